/** An MCP Tool as JSON (the upstream's definition, with the name agents see). */
export type ToolDefinitionJson = Record<string, unknown> & { name: string };

/** One tool as agents see it. */
export interface ExposedTool {
  /** `<upstream>__<tool>`: what agents list and call. */
  readonly exposedName: string;
  readonly upstreamName: string;
  /** The upstream's own tool name. */
  readonly toolName: string;
  /** The upstream's Tool object with `name` replaced by the exposed name. */
  readonly definition: ToolDefinitionJson;
}

export interface CallToolOptions {
  signal?: AbortSignal;
  /** The agent's request `_meta` to pass on (progress token etc.), minus what the gateway owns. */
  meta?: Record<string, unknown>;
}

/**
 * The tools of every connected upstream, merged. The downstream MCP handler lists from it and
 * routes calls through it; it knows nothing of keys (filtering is the caller's job).
 */
export interface ToolRouter {
  /** Every tool of every ready upstream, in upstream order then the upstream's own order. */
  listTools(): readonly ExposedTool[];
  /** The tool with this exposed name, or undefined. */
  findTool(exposedName: string): ExposedTool | undefined;
  /**
   * Calls the tool on its upstream and resolves with the upstream's CallToolResult as JSON,
   * unchanged. Rejects with a PortcullisError (code UPSTREAM_UNAVAILABLE, UPSTREAM_ERROR) when
   * the upstream cannot answer; a JSON-RPC error from the upstream is rejected as an
   * UpstreamRpcError carrying its code, message and data.
   */
  callTool(tool: ExposedTool, args: Record<string, unknown> | undefined, options?: CallToolOptions): Promise<Record<string, unknown>>;
  /** Called whenever the merged tool list changes. Returns an unsubscribe function. */
  onToolsChanged(listener: () => void): () => void;
}

/** Moved to upstream-rpc-error.ts; named here until the last importers move. */
export { UpstreamRpcError } from './upstream-rpc-error.ts';
