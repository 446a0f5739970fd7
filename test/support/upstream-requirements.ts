/**
 * What the upstream side of a node must do (issue 5), one id a behaviour. Every id must appear in
 * the name of at least one test in test/unit/upstream-*.test.ts or test/e2e/upstream-*.e2e.test.ts;
 * test/unit/upstream-requirements.test.ts fails otherwise.
 */
export const UPSTREAM_REQUIREMENTS = {
  'UP-STDIO-CONNECT': 'A stdio upstream is spawned with its command, args, env and cwd, listed and called.',
  'UP-HTTP-CONNECT': 'A Streamable HTTP upstream is connected, listed and called.',
  'UP-SSE-CONNECT': 'A legacy HTTP+SSE upstream is connected, listed and called.',
  'UP-HTTP-HEADERS': "An HTTP upstream's static headers and bearer token go with every request.",
  'UP-HTTP-REDIRECT':
    'An HTTP upstream whose endpoint redirects within its origin (307/308) is still called (relayed requests fall ' +
    'back to the SDK transport, which follows).',
  'UP-HTTP-RESET-RETRY':
    'A relayed POST whose kept-alive connection the upstream drops before answering is sent once more, on a new ' +
    'connection.',
  'UP-HTTP-RESET-ONCE':
    'A POST dropped again on its second attempt fails as unavailable; it is never sent a third time.',
  'UP-ERA-2025': 'A 2025-era server is spoken to in its revision (initialize handshake).',
  'UP-ERA-2026':
    'A 2026-07-28 server is spoken to in 2026-07-28 (server/discover), including health checks and input_required.',
  'UP-TIMEOUTS':
    "Per-upstream connect and call timeouts apply; 0 takes the node's defaults; a call past its timeout fails " +
    'naming the upstream.',
  'UP-DISABLED': 'A disabled upstream holds no connection and reports DISABLED.',
  'UP-AUTH-DOWN':
    'Auth and config errors (HTTP 401/403, command not found) show DOWN with the reason and are retried slowly, ' +
    'not blindly.',
  'UP-STDIO-KILL-INFLIGHT':
    'Calls in flight when an upstream dies fail at once with UPSTREAM_UNAVAILABLE naming it; other upstreams keep ' +
    'working.',
  'UP-STDIO-RESTART':
    'A stdio upstream that exits (mid-call or idle) is reported DOWN with why and restarted with backoff.',
  'UP-HTTP-RECONNECT': 'An HTTP upstream that goes away is DOWN, and READY again when it is back.',
  'UP-SESSION-REINIT':
    'An expired upstream session (HTTP 404) is re-initialized transparently; safe requests are retried once, ' +
    'unsafe ones are not.',
  'UP-HEALTH':
    'A periodic ping per upstream: failures make it DEGRADED, then DOWN at the threshold (reconnected); passing ' +
    'pings make it READY.',
  'UP-CATALOGS':
    'Tools, prompts, resources and templates are kept per upstream, all pages, only for declared capabilities.',
  'UP-SUBSCRIBE-2026':
    'A resource subscription to a 2026-07-28 upstream (which has no resources/subscribe) is held as one ' +
    'subscriptions/listen stream naming every subscribed URI; its updates reach the subscribed agents of both eras.',
  'UP-SUBSCRIBE-RESTORE':
    'After an upstream reconnects (process restarted, HTTP server restarted), the node makes its resource ' +
    "subscriptions again in the upstream's era.",
  'UP-LIST-CHANGED':
    'list_changed from an upstream refreshes that catalog and fires onCatalogChanged/onToolsChanged; the next ' +
    'report carries it.',
  'UP-ROUTE-RESOURCE':
    'routeResource: listed URIs first (the first upstream the asking key may use wins, collisions noted), then RFC ' +
    "6570 templates in upstream order (likewise among the key's upstreams).",
  'UP-RELAY-UNCHANGED': "Relayed results are the upstream's JSON, unchanged.",
  'UP-RELAY-MALFORMED':
    'A relayed request answered with a malformed JSON-RPC response fails at once as UPSTREAM_ERROR naming the ' +
    'upstream, not by timing out.',
  'UP-RELAY-STREAM-END':
    'An HTTP answer stream that ends without the response (and cannot be resumed) fails the call at once as ' +
    'UPSTREAM_UNAVAILABLE.',
  'UP-RELAY-CONCURRENT':
    'Many requests in flight on one upstream connection each get their own answer (ids remapped per call).',
  'UP-RELAY-PROGRESS': "Progress reaches the caller under the agent's own progress token, and resets the call timeout.",
  'UP-RELAY-CANCEL': 'Aborting a relayed request sends notifications/cancelled upstream and rejects at once.',
  'UP-RELAY-SERVER-REQUEST':
    'Sampling, elicitation and roots requests from an upstream go to the onRequest of the call that caused them ' +
    '(over stdio and SSE, which do not say: the only call in flight, or the oldest when every call in flight is ' +
    "one agent's); unroutable ones are answered with an error.",
  'UP-RELAY-PROGRESS-ORDER':
    "Progress of a request relayed on the SDK client's path reaches the caller in wire order, including a last " +
    'progress read together with the result.',
  'UP-PARAM-HEADERS':
    "A tools/call to a 2026-07-28 upstream carries the Mcp-Param-* headers (SEP-2243) that the upstream's tool " +
    'declares with x-mcp-header.',
  'UP-RELAY-NOTIFICATIONS':
    'Notifications related to a call go to its onNotification; others to onUpstreamNotification.',
  'UP-NAMES':
    'Exposed names are <upstream>__<name> or bare (unprefixed); invalid or colliding names are left out and reported.',
  'UP-HASH':
    'definition_sha256 is the hex SHA-256 of the canonical JSON (sorted keys) of name, title, description, ' +
    'inputSchema, outputSchema, annotations.',
  'UP-PINNING':
    'With pinning on, a tool whose hash differs from its pin is held back (not listed, not callable) until a ' +
    'snapshot pins the new hash; unpinned tools are exposed.',
  'UP-REPORT':
    'UpstreamReport carries state, error, catalog with hashes, server identity and protocol version, summaries of ' +
    'the prompts, resources and resource templates (names/URIs, titles, descriptions, arguments, MIME types; never ' +
    'content), and is re-sent when any of them changes.',
  'UP-REPORT-CAP':
    'The prompts, resources and templates in a report are capped (1,000 entries and 256 KiB of text a kind, texts ' +
    'cut to their limits, over-long names/URIs left out), with the total listed reported beside.',
  'UP-REPORT-LIST-CHANGED':
    'A list_changed of prompts or resources from an upstream reaches the control plane: GraphQL shows the new ' +
    'list, when it changed and what was added.',
  'UP-REAL-SERVERS': 'server-memory and server-filesystem are listed and called.',
} as const;

export type UpstreamRequirementId = keyof typeof UPSTREAM_REQUIREMENTS;
