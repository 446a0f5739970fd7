import type { AllowList } from '../policy/allow-list.ts';
import type { ExposedTool, ToolRouter } from '../upstream/tool-router.ts';

/** The tools one allow-list may see, with their `tools` array pre-serialized for tools/list. */
export interface ToolView {
  readonly tools: readonly ExposedTool[];
  /** `JSON.stringify` of the tool definitions, spliced into tools/list responses as is. */
  readonly json: string;
}

/**
 * Filtered tool lists per allow-list, computed once and reused until the router's catalog
 * changes. Allow-lists are compiled once per snapshot, so keying by instance is exact and a new
 * snapshot naturally misses (its old entries are garbage with the old snapshot).
 */
export class ToolViews {
  private cache = new WeakMap<AllowList, ToolView>();
  private readonly listeners = new Set<() => void>();
  private readonly unsubscribe: () => void;

  constructor(private readonly router: ToolRouter) {
    this.unsubscribe = router.onToolsChanged(() => {
      this.cache = new WeakMap();
      for (const listener of this.listeners) listener();
    });
  }

  viewFor(allowList: AllowList): ToolView {
    let view = this.cache.get(allowList);
    if (view === undefined) {
      const tools = this.router.listTools().filter((t) => allowList.allows(t.exposedName, t.upstreamName));
      view = { tools, json: JSON.stringify(tools.map((t) => t.definition)) };
      this.cache.set(allowList, view);
    }
    return view;
  }

  /** The tool if it exists and this allow-list may call it; otherwise undefined, indistinguishably. */
  findAllowed(allowList: AllowList, exposedName: string): ExposedTool | undefined {
    const tool = this.router.findTool(exposedName);
    return tool !== undefined && allowList.allows(tool.exposedName, tool.upstreamName) ? tool : undefined;
  }

  /** Called after the cache was dropped because the catalog changed. */
  onChanged(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.unsubscribe();
    this.listeners.clear();
  }
}
