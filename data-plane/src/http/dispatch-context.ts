import type { DispatchContext, ProtocolEra, RequestChannel } from '../mcp/dispatcher.ts';
import type { RequestOrigin } from '../pipeline/operation.ts';
import type { Cancellation } from '../upstream/cancellation.ts';
import type { Authenticated } from './authenticate.ts';

/**
 * What the dispatcher needs of a request an agent sent over HTTP (Streamable HTTP or legacy SSE): who sent it (as
 * authenticated), in which era, what cancels it; the rest is what the transport knows. Positional arguments, so that
 * the hot path builds one object per request.
 */
export function httpDispatchContext(
  auth: Authenticated,
  era: ProtocolEra,
  cancellation: Cancellation,
  channel: RequestChannel | undefined,
  origin: RequestOrigin | undefined,
  sessionId?: string,
  agentCapabilities?: unknown,
): DispatchContext {
  return {
    principal: auth.principal,
    era,
    cancellation,
    sessionKeys: auth.config.sessionKeys,
    receivedAt: auth.receivedAt,
    sessionId,
    agentCapabilities,
    channel,
    origin,
  };
}
