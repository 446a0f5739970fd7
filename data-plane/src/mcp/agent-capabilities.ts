import { UpstreamRpcError } from '../upstream/upstream-rpc-error.ts';
import type { RpcMessage } from '../upstream/upstream-router.ts';
import { isPlainObject } from './json-rpc.ts';
import { RpcErrorCode } from './protocol.ts';

/** The client capability each server-to-client request needs (as the SDK's Server.assertCapabilityForMethod checks). */
const NEEDED: Readonly<Record<string, string>> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/**
 * The capability `request` needs that the agent did not declare, or undefined when it may be asked.
 * Unknown capabilities (a session that has not said) let every request through: the agent answers
 * for itself. URL-mode elicitation needs `elicitation.url`; form mode is what a bare
 * `elicitation: {}` declares.
 */
export function undeclaredCapability(capabilities: unknown, request: RpcMessage): string | undefined {
  const needed = NEEDED[request.method];
  if (needed === undefined || capabilities === undefined) return undefined;
  const declared = isPlainObject(capabilities) ? capabilities[needed] : undefined;
  if (!isPlainObject(declared)) return needed;
  if (needed === 'elicitation' && request.params?.['mode'] === 'url' && !isPlainObject(declared['url']))
    return 'elicitation.url';
  return undefined;
}

/**
 * `ask(request)`, unless the agent did not declare the capability the request needs: then the
 * upstream is answered -32601 at once, as the agent's SDK would have answered, and the agent is never
 * sent a request its capabilities rule out (MCP: servers send only what the client declared).
 */
export function askIfDeclared(
  capabilities: unknown,
  request: RpcMessage,
  ask: (request: RpcMessage) => Promise<Record<string, unknown>>,
): Promise<Record<string, unknown>> {
  const missing = undeclaredCapability(capabilities, request);
  if (missing === undefined) return ask(request);
  return Promise.reject(
    new UpstreamRpcError(
      RpcErrorCode.MethodNotFound,
      `Method not found: the agent did not declare the ${missing} capability, so the gateway does not send it ` +
        `${request.method}`,
    ),
  );
}
