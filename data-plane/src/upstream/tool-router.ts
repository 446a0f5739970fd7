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
