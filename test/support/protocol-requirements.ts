/**
 * What the downstream MCP side promises agents ("agents must not be able to tell the gateway from
 * the servers behind it, except that there is one endpoint"), by id. Every id must be named by at
 * least one test (`test/unit/mcp-protocol-requirements.test.ts` fails otherwise); tests name the
 * ids they cover at the start of their name.
 */
export const PROTOCOL_REQUIREMENTS: Readonly<Record<string, string>> = {
  'DN-TRANSPORT-JSON':
    'Streamable HTTP: a POSTed request is answered with application/json when nothing else is sent before the result.',
  'DN-TRANSPORT-SSE-RESPONSE':
    'Streamable HTTP: a POSTed request whose upstream sends related notifications first is answered with a ' +
    'text/event-stream, the result last.',
  'DN-TRANSPORT-GET-STREAM':
    '2025 era: GET /mcp opens the session notification stream (list_changed, resources/updated, log messages).',
  'DN-TRANSPORT-DELETE':
    '2025 era: DELETE /mcp ends the session and drops what this node holds for it (its GET streams too); the ended ' +
    'id is refused with 404 afterwards.',
  'DN-SESSION-MAX-AGE':
    '2025 era: a session id is honoured for a configurable time after it was issued (default 24 h), then refused ' +
    'with 404 so the agent initializes again.',
  'DN-TRANSPORT-LEGACY-SSE':
    'Legacy HTTP+SSE transport: GET /sse names /messages?sessionId=<signed token>; POSTs are answered 202, ' +
    'responses travel on the stream.',
  'DN-TRANSPORT-LEGACY-SSE-OTHER-NODE':
    'Legacy HTTP+SSE: a POST /messages on a node that does not hold the stream is relayed through the control ' +
    'plane to the node its signed token names, which checks session and key and handles it as if posted there ' +
    '(responses on its stream); answered 202 once that node accepted it.',
  'DN-TRANSPORT-LEGACY-SSE-OTHER-NODE-UNREACHABLE':
    "Legacy HTTP+SSE: a POST /messages whose stream's node cannot be reached (gone, silent for 5 s, or no " +
    'control-plane connection) is answered 404 saying so, so the agent opens a new GET /sse.',
  'DN-VERSION-NEGOTIATION':
    'Clients of 2024-11-05, 2025-03-26, 2025-06-18, 2025-11-25 and 2026-07-28 connect and are served in their ' +
    'revision.',
  'DN-METHOD-NOT-FOUND': 'Unknown methods (and methods removed in a revision) are answered -32601.',
  'DN-TOOLS-LIST':
    'tools/list lists exactly the tools the key may call, of every upstream, as <upstream>__<name>, with the ' +
    "upstream's definitions.",
  'DN-TOOLS-CALL': 'tools/call runs the tool on its upstream (name un-prefixed) and returns its result unchanged.',
  'DN-TOOLS-REFUSED':
    "A call to a tool outside the key's allow-list is refused exactly as a call to a tool that does not exist.",
  'DN-CAPABILITIES-MERGED': 'The capabilities advertised are what the merged upstreams offer.',
  'DN-PROMPTS-LIST': 'prompts/list lists the prompts of every upstream as <upstream>__<name>, filtered by the key.',
  'DN-PROMPTS-GET':
    'prompts/get is relayed to the owning upstream with the name un-prefixed; invisible prompts are not found.',
  'DN-RESOURCES-LIST': 'resources/list lists the resources of the upstreams the key may use, URIs unchanged.',
  'DN-RESOURCES-READ':
    'resources/read routes by listed URI, then by matching template, in upstream order among the upstreams the key ' +
    'may use (an upstream it cannot use never shadows one it can); others are not found (-32602).',
  'DN-RESOURCES-TEMPLATES-LIST': 'resources/templates/list lists the templates of the upstreams the key may use.',
  'DN-RESOURCES-SUBSCRIBE':
    '2025 era: resources/subscribe and unsubscribe are relayed (ref-counted per node) and updates reach the ' +
    'subscribed agent on its GET stream.',
  'DN-LISTEN':
    '2026-07-28: subscriptions/listen acknowledges the honored filter and carries list_changed and ' +
    'resources/updated, stamped with the subscription id.',
  'DN-COMPLETION': 'completion/complete routes by prompt name (un-prefixed) or resource template.',
  'DN-PING': '2025 era: ping is answered by the gateway.',
  'DN-LOGGING-SETLEVEL':
    '2025 era: logging/setLevel is kept per session and filters the log messages relayed to it; it is not set on ' +
    'shared upstreams.',
  'DN-PAGINATION':
    'Every list pages across upstreams with an opaque cursor (page size configurable); an unknown cursor is -32602.',
  'DN-CACHE-HINTS': '2026-07-28: lists and reads carry cacheScope private, ttlMs and resultType.',
  'DN-LIST-CHANGED': 'list_changed for tools, prompts and resources reaches connected agents whose view changed.',
  'DN-PROGRESS': 'Upstream progress for an agent progress token reaches the agent.',
  'DN-CANCEL':
    '2025 era: notifications/cancelled from the agent aborts the upstream call in flight (on this node; ' +
    'DN-RELAY-CANCEL for another node).',
  'DN-CANCEL-LISTENER':
    "A request's cancellation (connection closed before its answer, or the agent's cancel) reaches the relay as a " +
    'listener without an AbortSignal made; a finished call stops watching its connection.',
  'DN-INTERNAL-ERROR':
    'A request whose handling throws is answered HTTP 500 with a JSON-RPC internal error (-32603), and the node ' +
    'goes on serving.',
  'DN-CANCEL-DISCONNECT':
    'The agent closing the HTTP connection aborts the upstream call: at once for 2026-07-28 requests and ' +
    'plain-JSON answers; after the resumption grace (DN-DISCONNECT-GRACE) for 2025-era answer streams.',
  'DN-SERVER-REQUEST':
    '2025 era: upstream elicitation/sampling/roots requests during a call are sent to the agent on the call stream ' +
    'and its reply returned upstream; over a stdio or SSE upstream (which do not relate a request to a call) also ' +
    'while several calls of that one session are in flight, and refused while calls of other agents are.',
  'DN-SERVER-REQUEST-CAPABILITY':
    'An upstream request for input the agent did not declare the capability for (elicitation, sampling, roots; ' +
    'URL-mode elicitation needs elicitation.url) is never sent to the agent: the upstream is answered -32601 at ' +
    'once, in every agent transport.',
  'DN-SERVER-IDENTITY':
    "2025-era agents never see a 2026-07-28 upstream's own serverInfo in result _meta (the gateway is their " +
    "server); 2026-07-28 agents see the gateway's.",
  'DN-TASKS':
    'Tasks extension: task-augmented tools/call and tasks/get|result|list|cancel pass through with task ids that ' +
    'name their upstream (signed, per key).',
  'DN-APPS-META': 'MCP Apps: ui:// resources and the tool _meta that points at them are relayed unchanged.',
  'DN-META-PASSTHROUGH':
    'Request _meta the gateway does not own reaches the upstream; the 2026-07-28 envelope does not.',
  'DN-INPUT-REQUIRED':
    '2026-07-28: an upstream needing input during tools/call or prompts/get (a 2025 server-to-client request, or a ' +
    '2026 input_required) answers the agent input_required with request state signed by the gateway (key, node, ' +
    'expiry); the retry with inputResponses completes the waiting upstream call.',
  'DN-INPUT-REQUIRED-ROUNDS':
    '2026-07-28: several input requests go out in one input_required round, a call may need several rounds (each ' +
    'with new state), and a request the retry left unanswered is asked again.',
  'DN-INPUT-STATE-REFUSED':
    '2026-07-28: request state that is tampered with, not minted by the gateway, issued to another key or for ' +
    'another request is refused with -32602, without spending it.',
  'DN-INPUT-STATE-ENDED':
    '2026-07-28: a retry whose state was already answered, or came after the parked call was abandoned (expiry), ' +
    'is refused with -32044 saying which.',
  'DN-INPUT-UPSTREAM-GONE':
    '2026-07-28: when the upstream dies while its call waits for input, the retry gets a JSON-RPC error naming the ' +
    'upstream.',
  'DN-INPUT-OTHER-NODE':
    '2026-07-28: a retry landing on another node than the one holding the waiting call is relayed there through ' +
    'the control plane, checked there as a local one (key, signature, expiry, one-shot) and answered with what ' +
    'that node produces (result, next round or error; its progress forwarded); the agent leaving cancels the call ' +
    'there.',
  'DN-INPUT-OTHER-NODE-UNREACHABLE':
    '2026-07-28: a retry whose holding node cannot be reached (gone, silent for 5 s, or no control-plane ' +
    'connection) is answered -32045 naming that node.',
  'DN-INPUT-CAPABILITIES':
    "2026-07-28: a 2026 upstream sees the agent's client capabilities (not the gateway's), so it asks only for " +
    'input the agent can give; its -32021 refusal is relayed with HTTP 400.',
  'DN-INPUT-PROGRESS':
    '2026-07-28: progress and log messages an upstream sends while a parked call runs go to the agent request ' +
    "waiting at that moment, progress under that request's token.",
  'DN-INPUT-CANCEL':
    '2026-07-28: the agent going away while its request (first call or retry) waits cancels the parked upstream ' +
    'call; its state is then refused saying so.',
  'DN-INPUT-LEGACY-AGENT':
    '2025 era: a 2026-07-28 upstream answering input_required reaches the agent as server-to-client requests on ' +
    'the call stream, and its answers complete the call.',
  'DN-SSE-EVENT-IDS':
    "2025 era: every event of a session's SSE streams (POST answers and the GET stream) carries an id, unique " +
    'within the session and naming the node and stream it came from; 2025-11-25 sessions get a priming event (id, ' +
    'empty data, retry) first; answers with nothing before the result stay plain JSON.',
  'DN-SSE-RESUME-GET':
    '2025 era: GET /mcp with the Last-Event-ID of a GET stream this node holds replays the events after it (those ' +
    'sent while the agent was away included) and carries the stream on.',
  'DN-SSE-RESUME-POST':
    '2025 era: GET /mcp with the Last-Event-ID of a dropped POST stream delivers the rest of that call (progress, ' +
    'the result) on the GET, which ends after the result.',
  'DN-SSE-RESUME-FRESH':
    "A Last-Event-ID of another node's stream, of another session, unknown, malformed or expired gets a fresh " +
    'stream with nothing replayed, never an error.',
  'DN-SSE-DISCONNECT-GRACE':
    '2025 era: a dropped resumable POST stream does not cancel its call; the call is cancelled upstream when no ' +
    'agent resumed the stream within the resume window (or the session ended). A dropped plain-JSON answer, which ' +
    'cannot be resumed, cancels at once.',
  'DN-SSE-POLLING':
    "SSE polling (SEP-1699), an operator option (--sse-max-stream-seconds): the node closes a 2025-11-25 session's " +
    'SSE connection (POST answer or GET stream, each primed) after that long without ending the stream or ' +
    "cancelling the call; the agent's GET with Last-Event-ID after the retry is primed again and gets the rest; " +
    'the official SDK clients (v1, v2 in 2025 mode) reconnect by themselves and get every progress and the result ' +
    'of a long call; sessions of older revisions are never closed this way.',
  'DN-SSE-EVENT-STORE-BOUNDS':
    'The per-node event store is bounded: events and bytes per stream, streams and bytes in all, and time (a ' +
    'stream idle longer than the resume window is dropped).',
  'DN-RELAY-SERVER-REPLY':
    "2025 era: an agent's reply to a server-to-client request (elicitation, sampling, roots) that lands on another " +
    'node than the one that asked is relayed there through the control plane and completes the call; it settles ' +
    'only a request sent to the same session and key.',
  'DN-RELAY-CANCEL':
    '2025 era: notifications/cancelled for a request in flight on another node is relayed to every node through ' +
    "the control plane, and the node running it aborts the upstream call (after checking the session is that key's).",
  'DN-PARAM-HEADERS':
    '2026-07-28: a tools/call carries the Mcp-Param-* headers its tool declares (x-mcp-header, SEP-2243), matching ' +
    'its arguments (plain or Base64 sentinel), else HTTP 400 -32020.',
  'DN-RELAY-SESSION-ENDED':
    '2025 era: a session ended with DELETE on one node is refused (404) on every node within a second, including ' +
    'nodes that connect later while the id would still be valid (the control plane keeps ended sessions until they ' +
    'would expire).',
  'DN-RELAY-SESSION-ENDED-DURABLE':
    '2025 era: an ended session stays refused (404) after the control plane and every node restart together: the ' +
    'control plane keeps ended sessions in Postgres, shared by its replicas, until they would have expired, and ' +
    'prunes rows past expiry at start and periodically.',
};
