import { PortcullisError } from '../../common/src/index.ts';
import { NAME_SEPARATOR } from '../../data-plane/src/policy/allow-list.ts';
import type { CallToolOptions, ExposedTool, ToolRouter } from '../../data-plane/src/upstream/tool-router.ts';

/** What a fake tool does when called: returns a CallToolResult, or throws (UpstreamRpcError, PortcullisError…). */
export type MemoryToolHandler = (args: Record<string, unknown> | undefined, options: CallToolOptions) => Promise<Record<string, unknown>> | Record<string, unknown>;

export interface MemoryTool {
  readonly upstream: string;
  readonly name: string;
  readonly description?: string;
  readonly inputSchema?: Record<string, unknown>;
  readonly handler?: MemoryToolHandler;
  /** False for a tool whose upstream is down: calls reject with UPSTREAM_UNAVAILABLE. */
  readonly available?: boolean;
}

export interface RecordedCall {
  readonly exposedName: string;
  readonly args: Record<string, unknown> | undefined;
  readonly options: CallToolOptions;
}

/** An echo of the `text` argument, like server-everything's `echo`. */
const echo: MemoryToolHandler = (args) => ({ content: [{ type: 'text', text: `Echo: ${String(args?.['text'] ?? '')}` }] });

/**
 * A ToolRouter over in-memory tools, for tests of the downstream side: tools can be added and
 * removed (firing onToolsChanged), and every call is recorded with the options it was given.
 */
export class MemoryToolRouter implements ToolRouter {
  readonly calls: RecordedCall[] = [];
  private tools: ExposedTool[] = [];
  private readonly handlers = new Map<string, MemoryToolHandler>();
  private readonly listeners = new Set<() => void>();

  constructor(tools: readonly MemoryTool[] = []) {
    for (const tool of tools) this.insert(tool);
  }

  add(tool: MemoryTool): void {
    this.insert(tool);
    this.changed();
  }

  remove(exposedName: string): void {
    this.tools = this.tools.filter((t) => t.exposedName !== exposedName);
    this.handlers.delete(exposedName);
    this.changed();
  }

  listTools(): readonly ExposedTool[] {
    return this.tools;
  }

  findTool(exposedName: string): ExposedTool | undefined {
    return this.tools.find((t) => t.exposedName === exposedName);
  }

  async callTool(tool: ExposedTool, args: Record<string, unknown> | undefined, options: CallToolOptions = {}): Promise<Record<string, unknown>> {
    this.calls.push({ exposedName: tool.exposedName, args, options });
    const handler = this.handlers.get(tool.exposedName);
    if (handler === undefined) throw new PortcullisError('UPSTREAM_UNAVAILABLE', `upstream ${tool.upstreamName} is not connected`);
    return handler(args, options);
  }

  onToolsChanged(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  private insert(tool: MemoryTool): void {
    const exposedName = `${tool.upstream}${NAME_SEPARATOR}${tool.name}`;
    this.tools = [
      ...this.tools.filter((t) => t.exposedName !== exposedName),
      {
        exposedName,
        upstreamName: tool.upstream,
        toolName: tool.name,
        definition: {
          name: exposedName,
          description: tool.description ?? `${tool.name} of ${tool.upstream}`,
          inputSchema: tool.inputSchema ?? { type: 'object', properties: { text: { type: 'string' } } },
        },
      },
    ];
    if (tool.available === false) this.handlers.delete(exposedName);
    else this.handlers.set(exposedName, tool.handler ?? echo);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
