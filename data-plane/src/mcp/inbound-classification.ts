import {
  classifyInboundRequest,
  type InboundClassificationOutcome,
  type InboundHttpRequest,
  type InboundLegacyRoute,
} from '@modelcontextprotocol/server';
import { isModernProtocolVersion } from './protocol.ts';
import { isObjectValue, isPlainRequestMeta, isRequestId } from './sdk-shapes.ts';

/**
 * The SDK's `classifyInboundRequest` with a fast path for the message nearly every POST carries: a
 * 2025-era JSON-RPC request (a `tools/call`, a listing) without a per-request envelope. The SDK's
 * classifier proves the JSON-RPC shape with its zod schemas, trying the two response schemas
 * first; their failures build issue lists, and at 32 concurrent calls that was ~4% of the node's
 * CPU. The SDK's schemas stay the definition of a valid message: the fast path accepts only a
 * subset that those schemas accept as a request (and reject as a response), and answers exactly
 * what the SDK would; anything else — initialize, notifications, responses, batches, envelopes,
 * modern headers, any unusual field — goes to the SDK's classifier. `sdk-shapes.test.ts`
 * runs both over a corpus of valid and invalid messages.
 */
export function classifyInbound(request: InboundHttpRequest): InboundClassificationOutcome {
  return fastLegacyRequest(request) ?? classifyInboundRequest(request);
}

/**
 * The outcome for a plain 2025-era request, or undefined when the SDK's classifier must decide. Exported for the
 * equivalence test.
 */
export function fastLegacyRequest(request: InboundHttpRequest): InboundLegacyRoute | undefined {
  if (request.httpMethod !== 'POST' || !isPlainLegacyRequest(request.body)) return undefined;
  const header = request.protocolVersionHeader;
  if (header === undefined) return NO_CLAIM;
  const requestedVersion = stripHttpOws(header);
  if (isModernProtocolVersion(requestedVersion)) return undefined;
  return { kind: 'legacy', reason: 'no-claim', requestedVersion };
}

const NO_CLAIM: InboundLegacyRoute = Object.freeze({ kind: 'legacy', reason: 'no-claim' });

/**
 * What the SDK's `JSONRPCRequestSchema` (strict: `jsonrpc` "2.0", `id` a string or safe integer,
 * `method` a string, optional object `params`) accepts, narrowed to what needs no further rule:
 * not `initialize` (the handshake has its own), and a `_meta` that is absent or carries neither the
 * envelope claim nor the related-task key, with a well-typed progress token.
 */
function isPlainLegacyRequest(body: unknown): boolean {
  if (!isObjectValue(body)) return false;
  for (const key in body) if (key !== 'jsonrpc' && key !== 'id' && key !== 'method' && key !== 'params') return false;
  if (body['jsonrpc'] !== '2.0' || !isRequestId(body['id'])) return false;
  const method = body['method'];
  if (typeof method !== 'string' || method === 'initialize') return false;
  const params = body['params'];
  return params === undefined || (isObjectValue(params) && isPlainRequestMeta(params['_meta']));
}

/** HTTP optional whitespace (space, tab) off both ends, as the SDK strips its headers. */
function stripHttpOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 32 || value.charCodeAt(start) === 9)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 32 || value.charCodeAt(end - 1) === 9)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}
