import type { GatewayError } from './gateway-error.ts';

/**
 * Results the gateway made for calls their upstream never ran (a refused approval), which pass the
 * limits step as results yet must not be charged the tool's price.
 */
export const NOT_CHARGED = new WeakSet<object>();

/** Where a gateway-made CallToolResult says what went wrong, for clients that read more than the text. */
export const TOOL_ERROR_META_KEY = 'dev.portcullis/error';

/**
 * A `tools/call` whose upstream could not run it, as the model must see it: a CallToolResult with
 * `isError: true` (the MCP SDK's advice for execution failures), not a protocol error, so the model
 * can read why and try again or choose another tool. `_meta` carries the machine-readable reason.
 */
export function upstreamFailureResult(error: GatewayError): Record<string, unknown> {
  const data = isRecord(error.data) ? error.data : {};
  return {
    content: [{ type: 'text', text: error.message }],
    isError: true,
    _meta: { [TOOL_ERROR_META_KEY]: { ...data, retryable: data['reason'] === 'UPSTREAM_UNAVAILABLE' } },
  };
}

/** A known tool whose upstream is away (reconnecting, down, still connecting): retryable. */
export function unavailableToolResult(upstream: string, tool: string): Record<string, unknown> {
  return {
    content: [
      {
        type: 'text',
        text:
          `Tool ${tool} is temporarily unavailable: its upstream "${upstream}" is not connected right now ` +
          `(reconnecting or down). Retry shortly.`,
      },
    ],
    isError: true,
    _meta: { [TOOL_ERROR_META_KEY]: { reason: 'UPSTREAM_UNAVAILABLE', upstream, retryable: true } },
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
