import { UpstreamRpcError, type ExposedTool, type ToolRouter } from '../upstream/tool-router.ts';
import { RpcErrorCode } from './protocol.ts';
import type { CatalogEntry, CatalogKind, RelayOptions, RpcMessage, UpstreamInfo, UpstreamRouter } from '../upstream/upstream-router.ts';

/** Whether a router implements the whole UpstreamRouter contract (not only tools). */
export function isUpstreamRouter(router: ToolRouter | UpstreamRouter): router is UpstreamRouter {
  return typeof (router as Partial<UpstreamRouter>).catalog === 'function' && typeof (router as Partial<UpstreamRouter>).request === 'function';
}

const EMPTY: readonly CatalogEntry[] = Object.freeze([]);

/**
 * An UpstreamRouter over a tools-only ToolRouter (the node wiring before UpstreamPool implements
 * the full contract): tools are listed and called, everything else is empty or "method not found".
 */
export class ToolsOnlyRouter implements UpstreamRouter {
  private entries: readonly CatalogEntry[] | undefined;
  private byName = new Map<string, ExposedTool>();

  constructor(private readonly tools: ToolRouter) {
    tools.onToolsChanged(() => {
      this.entries = undefined;
    });
  }

  listTools(): readonly ExposedTool[] {
    return this.tools.listTools();
  }

  findTool(exposedName: string): ExposedTool | undefined {
    return this.tools.findTool(exposedName);
  }

  callTool(...args: Parameters<ToolRouter['callTool']>): ReturnType<ToolRouter['callTool']> {
    return this.tools.callTool(...args);
  }

  onToolsChanged(listener: () => void): () => void {
    return this.tools.onToolsChanged(listener);
  }

  upstreams(): readonly UpstreamInfo[] {
    return [];
  }

  catalog(kind: CatalogKind): readonly CatalogEntry[] {
    if (kind !== 'tools') return EMPTY;
    if (this.entries === undefined) {
      const tools = this.tools.listTools();
      this.byName = new Map(tools.map((t) => [`${t.upstreamName}\n${t.toolName}`, t]));
      this.entries = tools.map((t) => ({ upstreamName: t.upstreamName, key: t.exposedName, upstreamKey: t.toolName, definition: t.definition }));
    }
    return this.entries;
  }

  find(kind: CatalogKind, key: string): CatalogEntry | undefined {
    if (kind !== 'tools') return undefined;
    const tool = this.tools.findTool(key);
    return tool === undefined ? undefined : { upstreamName: tool.upstreamName, key: tool.exposedName, upstreamKey: tool.toolName, definition: tool.definition };
  }

  routeResource(): string | undefined {
    return undefined;
  }

  async request(upstreamName: string, message: RpcMessage, options: RelayOptions = {}): Promise<Record<string, unknown>> {
    if (message.method !== 'tools/call') throw new UpstreamRpcError(RpcErrorCode.MethodNotFound, 'Method not found');
    this.catalog('tools');
    const name = String(message.params?.['name']);
    const tool = this.byName.get(`${upstreamName}\n${name}`) ?? this.tools.listTools().find((t) => t.upstreamName === upstreamName && t.toolName === name);
    if (tool === undefined) throw new Error(`tool ${name} of upstream ${upstreamName} is gone`);
    const callOptions: { signal?: AbortSignal; meta?: Record<string, unknown> } = {};
    const signal = options.cancellation?.signal();
    if (signal !== undefined) callOptions.signal = signal;
    if (options.meta !== undefined) callOptions.meta = options.meta;
    return this.tools.callTool(tool, message.params?.['arguments'] as Record<string, unknown> | undefined, callOptions);
  }

  async notify(): Promise<void> {}

  onCatalogChanged(listener: (kind: CatalogKind) => void): () => void {
    return this.tools.onToolsChanged(() => listener('tools'));
  }

  onUpstreamNotification(): () => void {
    return () => undefined;
  }
}
