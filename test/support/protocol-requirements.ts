/**
 * What the downstream MCP side promises agents ("agents must not be able to tell the gateway from
 * the servers behind it, except that there is one endpoint"), by id. Every id must be named by at
 * least one test (`test/unit/mcp-protocol-requirements.test.ts` fails otherwise); tests name the
 * ids they cover at the start of their name.
 */
export const PROTOCOL_REQUIREMENTS: Readonly<Record<string, string>> = {
  'DN-TRANSPORT-JSON': 'Streamable HTTP: a POSTed request is answered with application/json when nothing else is sent before the result.',
  'DN-TRANSPORT-SSE-RESPONSE': 'Streamable HTTP: a POSTed request whose upstream sends related notifications first is answered with a text/event-stream, the result last.',
  'DN-TRANSPORT-GET-STREAM': '2025 era: GET /mcp opens the session notification stream (list_changed, resources/updated, log messages).',
  'DN-TRANSPORT-DELETE': '2025 era: DELETE /mcp ends the session and drops what this node holds for it.',
  'DN-TRANSPORT-LEGACY-SSE': 'Legacy HTTP+SSE transport: GET /sse names /messages?sessionId=<signed token>; POSTs are answered 202, responses travel on the stream.',
  'DN-TRANSPORT-LEGACY-SSE-OTHER-NODE': 'Legacy HTTP+SSE: a POST /messages on a node that does not hold the stream is refused 404, saying it must reach that node.',
  'DN-VERSION-NEGOTIATION': 'Clients of 2024-11-05, 2025-03-26, 2025-06-18, 2025-11-25 and 2026-07-28 connect and are served in their revision.',
  'DN-METHOD-NOT-FOUND': 'Unknown methods (and methods removed in a revision) are answered -32601.',
  'DN-CAPABILITIES-MERGED': 'The capabilities advertised are what the merged upstreams offer.',
  'DN-PROMPTS-LIST': 'prompts/list lists the prompts of every upstream as <upstream>__<name>, filtered by the key.',
  'DN-PROMPTS-GET': 'prompts/get is relayed to the owning upstream with the name un-prefixed; invisible prompts are not found.',
  'DN-RESOURCES-LIST': 'resources/list lists the resources of the upstreams the key may use, URIs unchanged.',
  'DN-RESOURCES-READ': 'resources/read routes by listed URI, then by matching template, in upstream order; others are not found (-32602).',
  'DN-RESOURCES-TEMPLATES-LIST': 'resources/templates/list lists the templates of the upstreams the key may use.',
  'DN-RESOURCES-SUBSCRIBE': '2025 era: resources/subscribe and unsubscribe are relayed (ref-counted per node) and updates reach the subscribed agent on its GET stream.',
  'DN-LISTEN': '2026-07-28: subscriptions/listen acknowledges the honored filter and carries list_changed and resources/updated, stamped with the subscription id.',
  'DN-COMPLETION': 'completion/complete routes by prompt name (un-prefixed) or resource template.',
  'DN-PING': '2025 era: ping is answered by the gateway.',
  'DN-LOGGING-SETLEVEL': '2025 era: logging/setLevel is kept per session and filters the log messages relayed to it; it is not set on shared upstreams.',
  'DN-PAGINATION': 'Every list pages across upstreams with an opaque cursor (page size configurable); an unknown cursor is -32602.',
  'DN-CACHE-HINTS': '2026-07-28: lists and reads carry cacheScope private, ttlMs and resultType.',
  'DN-LIST-CHANGED': 'list_changed for tools, prompts and resources reaches connected agents whose view changed.',
  'DN-PROGRESS': 'Upstream progress for an agent progress token reaches the agent.',
  'DN-CANCEL': '2025 era: notifications/cancelled from the agent aborts the upstream call in flight on this node.',
  'DN-CANCEL-DISCONNECT': 'The agent closing the HTTP connection aborts the upstream call.',
  'DN-SERVER-REQUEST': '2025 era: upstream elicitation/sampling/roots requests during a call are sent to the agent on the call stream and its reply returned upstream.',
  'DN-TASKS': 'Tasks extension: task-augmented tools/call and tasks/get|result|list|cancel pass through with task ids that name their upstream (signed, per key).',
  'DN-APPS-META': 'MCP Apps: ui:// resources and the tool _meta that points at them are relayed unchanged.',
  'DN-META-PASSTHROUGH': 'Request _meta the gateway does not own reaches the upstream; the 2026-07-28 envelope does not.',
  'DN-INPUT-REQUIRED': '2026-07-28: an upstream needing input during tools/call or prompts/get (a 2025 server-to-client request, or a 2026 input_required) answers the agent input_required with request state signed by the gateway (key, node, expiry); the retry with inputResponses completes the waiting upstream call.',
  'DN-INPUT-REQUIRED-ROUNDS': '2026-07-28: several input requests go out in one input_required round, a call may need several rounds (each with new state), and a request the retry left unanswered is asked again.',
  'DN-INPUT-STATE-REFUSED': '2026-07-28: request state that is tampered with, not minted by the gateway, issued to another key or for another request is refused with -32602, without spending it.',
  'DN-INPUT-STATE-ENDED': '2026-07-28: a retry whose state was already answered, or came after the parked call was abandoned (expiry), is refused with -32044 saying which.',
  'DN-INPUT-UPSTREAM-GONE': '2026-07-28: when the upstream dies while its call waits for input, the retry gets a JSON-RPC error naming the upstream.',
  'DN-INPUT-OTHER-NODE': '2026-07-28: a retry landing on another node than the one holding the waiting call is refused with -32045 naming that node (relaying it there is a follow-up).',
  'DN-INPUT-LEGACY-AGENT': '2025 era: a 2026-07-28 upstream answering input_required reaches the agent as server-to-client requests on the call stream, and its answers complete the call.',
};
