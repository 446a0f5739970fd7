import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { ApprovalGate } from '../approvals/approval-gate.ts';
import type { AppliedConfig } from '../config/applied-config.ts';
import { LogLevels, ResourceSubscriptions } from '../mcp/agent-state.ts';
import { CatalogViews } from '../mcp/catalog-views.ts';
import { McpDispatcher, type McpDispatcherOptions, type ServerInfo } from '../mcp/dispatcher.ts';
import { LIST_CACHE_TTL_MS } from '../mcp/protocol.ts';
import type { RunOperation } from '../pipeline/pipeline.ts';
import { EndedSessions } from '../mcp/ended-sessions.ts';
import { SessionGuard } from '../mcp/session-guard.ts';
import { ServerRequests } from '../mcp/server-requests.ts';
import { NodeRelay, type NodeRelayOptions } from '../relay/node-relay.ts';
import { relayInputRetries } from '../relay/input-retry-relay.ts';
import type { UpstreamRouter } from '../upstream/upstream-router.ts';
import { AgentStreams } from './agent-streams.ts';
import { EventStore, type EventStoreOptions } from './event-store.ts';
import { CallAdmission, InFlightRequests, type CallAdmissionOptions } from './in-flight.ts';
import { createLegacySseEndpoints } from './legacy-sse.ts';
import { createMcpEndpoint, type McpServices } from './mcp-endpoint.ts';
import type { DataPlaneMetrics } from '../observability/metrics.ts';
import type { RateLimitGate } from '../policy/rate-limits.ts';
import type { BudgetLedger } from '../policy/budget-ledger.ts';
import type { AuditRecorder } from '../audit/audit-recorder.ts';
import type { Tracing } from '../../../common/src/tracing.ts';
import { answerFailure, sendJson } from './respond.ts';
import { checkHost, type AllowedHost } from './host-guard.ts';
import { createRestEndpoint, REST_PATHS } from '../rest/rest-endpoint.ts';
import type { ReadinessState } from '../observability/readiness.ts';
import { codeModeScope } from '../code-mode/code-mode-scope.ts';
import type { SandboxPool } from '../code-mode/sandbox-pool.ts';
import { AgentTokens, looksLikeJwt } from '../oauth/agent-tokens.ts';
import { RESOURCE_METADATA_PATH } from '../oauth/identity-providers.ts';

export interface DataPlaneServerOptions {
  /** The snapshot being served right now, or undefined before the first one arrived. */
  readonly getConfig: () => AppliedConfig | undefined;
  /** The merged upstreams (UpstreamPool): catalogs, relay, notifications. */
  readonly upstreams: UpstreamRouter;
  readonly logger: Logger;
  /** Largest accepted request body; larger ones get 413. */
  readonly maxBodyBytes: number;
  /** What the gateway calls itself in initialize / server/discover. */
  readonly serverInfo: ServerInfo;
  /** Interval of SSE keep-alive comments on GET streams (default 15 s, as the SDK). */
  readonly sseKeepAliveMs?: number;
  /**
   * Entries per page of tools/prompts/resources/templates lists; 0 (default) lists everything on one page, since many
   * agents never follow nextCursor.
   */
  readonly listPageSize?: number;
  /** `ttlMs` of 2026-07-28 list results (default 0). */
  readonly listTtlMs?: number;
  /** Fed by tool calls; served on its own listen address (common/src/metrics-server.ts), never here. */
  readonly metrics?: DataPlaneMetrics;
  /** What `GET /readyz` answers; default: ready once there is a configuration snapshot. */
  readonly readiness?: () => ReadinessState;
  /**
   * Anonymous access (off by default): requests to /mcp, /sse and /messages that carry no credentials
   * act as this virtual key while it is in the snapshot; otherwise they get 401 as without it.
   */
  readonly anonymousKeyId?: string;
  /** MCP authorization: the least time between two JWKS fetches of one issuer for unknown key ids (default 30 s). */
  readonly jwksRefreshCooldownMs?: number;
  /**
   * DNS-rebinding protection on /mcp, /sse and /messages: the accepted `Host` (and `Origin`, when sent)
   * hosts; undefined, no check. The node wiring passes `effectiveAllowedHosts(listen address, list)`.
   */
  readonly allowedHosts?: readonly AllowedHost[];
  /**
   * How long a 2025-era session id is honoured after it was issued (default 24 h); agents then get 404 and initialize
   * again.
   */
  readonly sessionMaxAgeMs?: number;
  /** This node's name: 2026-07-28 `input_required` request states name the node holding the waiting call. */
  readonly nodeId?: string;
  /** How long calls wait for a 2026-07-28 agent's retry with input, and the like (defaults in input-required.ts). */
  readonly inputExchanges?: McpDispatcherOptions['inputExchanges'];
  /** The tag in this node's server-request ids (`pcn-<tag>-<n>`); random when not given. */
  readonly nodeTag?: string;
  /** Timeouts of requests relayed to other nodes (defaults in relay/relayed-calls.ts). */
  readonly relayedCalls?: NodeRelayOptions['calls'];
  /**
   * Changes the request pipeline's steps (say, inserts one); given the default steps in chain order
   * (pipeline/pipeline.ts).
   */
  readonly steps?: McpDispatcherOptions['steps'];
  /**
   * Bounds of the per-node store of 2025-era SSE events (resumption with `Last-Event-ID`), the resume window, the SSE
   * `retry` and SSE polling (defaults in event-store.ts).
   */
  readonly eventStore?: EventStoreOptions;
  /** Requests in flight per key and per session on this node (defaults in in-flight.ts). */
  readonly callAdmission?: CallAdmissionOptions;
  /** Where calls whose execution policy is `approve` wait for a person; absent, such calls are refused. */
  readonly approvals?: ApprovalGate;
  /** Code mode's sandbox pool; absent, code mode is off on this node. The caller closes it. */
  readonly sandbox?: SandboxPool;
  /** This node's rate-limit buckets, told its share by the config stream; absent, nothing is rate limited. */
  readonly rateLimiter?: RateLimitGate;
  /** This node's budget leases, fed by the config stream; absent, budgets are not enforced. */
  readonly budgetLedger?: BudgetLedger;
  /** Where audit records go (the pipeline's record step and the edge's refusals); none written when undefined. */
  readonly audit?: AuditRecorder;
  /** OpenTelemetry traces (a span per MCP request and per upstream call); absent, none are made. */
  readonly tracing?: Tracing | undefined;
}

/** The data plane's HTTP server and the hooks the node wiring calls. */
export interface DataPlaneServer {
  /** The node:http server, not listening yet: the caller picks host and port. */
  readonly server: Server;
  /** Node-to-node messages through the control plane: connect it to the config stream. */
  readonly relay: NodeRelay;
  /**
   * Call after a new snapshot was swapped in (getConfig() now returns it): agent streams are
   * re-authenticated, ended when their key was revoked or their session key rotated out, and sent
   * `list_changed` for each catalog whose view changed for their key.
   */
  configChanged(): void;
  /** How many 2025-era notification streams (GET /mcp and legacy GET /sse) this node holds. */
  readonly notificationStreamCount: number;
  /** How many 2026-07-28 `subscriptions/listen` streams this node holds. */
  readonly listenStreamCount: number;
  /** How many SSE connections this node closed for SSE polling (`maxConnectionMs`), their streams going on. */
  readonly polledSseConnections: number;
  /**
   * The request pipeline's entry: runs one operation (its principal or key id, parent id, method,
   * params) through authenticate → authorize → policy → limits → execute, as every MCP request is.
   */
  readonly run: RunOperation;
  /** Ends the notification streams, stops listening and resolves once every connection is gone. */
  close(): Promise<void>;
}

const HEALTHY = JSON.stringify({ status: 'ok' });
const READY = JSON.stringify({ status: 'ready' });
const NO_CONFIG: ReadinessState = { ready: false, reason: 'no configuration snapshot yet' };
/** Browser-based agents read the metadata cross-origin. */
const METADATA_CORS = { 'access-control-allow-origin': '*', 'cache-control': 'max-age=60' };
const NOT_FOUND = JSON.stringify({
  error: {
    code: 'NOT_FOUND',
    message:
      'Not found: the MCP endpoint is /mcp (legacy HTTP+SSE: GET /sse, POST /messages; REST: GET /v1/mcp/tools, ' +
      'POST /v1/mcp/tool/execute, GET /v1/openapi.json)',
  },
});

/**
 * Creates (without listening) the HTTP server agents talk to: `POST/GET/DELETE /mcp`, `GET /healthz`,
 * `GET /readyz`. The hot path is node:http plus pre-serialized responses; no SDK server is built
 * per request and nothing about a session is kept in this process, except the GET notification
 * streams it holds open.
 */
export function createDataPlaneServer(options: DataPlaneServerOptions): DataPlaneServer {
  const { getConfig, logger } = options;
  const router = options.upstreams;
  const views = new CatalogViews(router, options.listPageSize ?? 0);
  const subscriptions = new ResourceSubscriptions(router, logger);
  const logLevels = new LogLevels();
  const streams = new AgentStreams({
    views,
    subscriptions,
    logLevels,
    logger,
    serverInfo: options.serverInfo,
    keepAliveMs: options.sseKeepAliveMs,
    maxStreamsPerSession: options.eventStore?.maxOpenStreamsPerSession,
    maxStreamsPerKey: options.eventStore?.maxOpenStreamsPerKey,
    toolsListShape:
      options.sandbox === undefined
        ? undefined
        : (known, keyId) => {
            const config = getConfig();
            const principal = known ?? config?.principalByKeyId(keyId);
            return principal === undefined ? '' : (codeModeScope(principal, config, views)?.key ?? '');
          },
    reauthenticate: (config, secret) => {
      const key = config.authenticate(secret);
      if (key !== undefined || !looksLikeJwt(secret)) return key;
      const token = tokens.cached(secret, config);
      return token === undefined || 'reason' in token ? undefined : token;
    },
  });
  const tokens = new AgentTokens(logger, { jwksRefreshCooldownMs: options.jwksRefreshCooldownMs });
  const serverRequests = new ServerRequests(options.nodeTag);
  const dispatcher = new McpDispatcher({
    router,
    views,
    subscriptions,
    logLevels,
    serverInfo: options.serverInfo,
    logger,
    listTtlMs: options.listTtlMs ?? LIST_CACHE_TTL_MS,
    metrics: options.metrics,
    audit: options.audit,
    tracing: options.tracing,
    nodeId: options.nodeId,
    nodeTag: serverRequests.nodeTag,
    inputExchanges: options.inputExchanges,
    getConfig,
    steps: options.steps,
    approvals: options.approvals,
    sandbox: options.sandbox,
    ...(options.rateLimiter === undefined ? {} : { rateLimiter: options.rateLimiter }),
    ...(options.budgetLedger === undefined ? {} : { budgetLedger: options.budgetLedger }),
  });
  const eventStore = new EventStore(options.eventStore);
  options.metrics?.eventStore(eventStore);
  const inFlight = new InFlightRequests();
  const endedSessions = new EndedSessions(options.sessionMaxAgeMs);
  const sessionGuard = new SessionGuard(endedSessions);
  const relay = new NodeRelay({
    serverRequests,
    inFlight,
    endedSessions,
    sessionGuard,
    getConfig,
    logger,
    onSessionEnded: (sessionId) => {
      streams.endHolder(sessionId);
      eventStore.endHolder(sessionId);
      subscriptions.forget(sessionId);
      logLevels.forget(sessionId);
    },
    ...(options.relayedCalls === undefined ? {} : { calls: options.relayedCalls }),
  });
  dispatcher.relayRetriesWith(
    relayInputRetries({ relay, dispatcher, getConfig, logger, nodeId: dispatcher.exchanges.options.nodeId }),
  );
  const admission = new CallAdmission(options.callAdmission);
  const services: McpServices = {
    dispatcher,
    streams,
    subscriptions,
    logLevels,
    serverRequests,
    inFlight,
    endedSessions,
    sessionGuard,
    eventStore,
    relay,
    admission,
  };
  const unsubscribeViews = views.onChanged((kind) => streams.catalogChanged(kind));
  const unsubscribeNotifications = router.onUpstreamNotification((upstream, notification) =>
    streams.upstreamNotification(upstream, notification),
  );
  const endpointOptions = {
    getConfig,
    services,
    maxBodyBytes: options.maxBodyBytes,
    logger,
    anonymousKeyId: options.anonymousKeyId,
    audit: options.audit,
    tokens,
    metrics: options.metrics,
  };
  const mcp = createMcpEndpoint(endpointOptions);
  const legacySse = createLegacySseEndpoints(endpointOptions);
  const rest = createRestEndpoint({
    getConfig,
    run: dispatcher.run,
    views,
    maxBodyBytes: options.maxBodyBytes,
    logger,
    version: options.serverInfo.version,
    tokens,
  });
  const allowedHosts = options.allowedHosts;
  const readiness =
    options.readiness ?? ((): ReadinessState => (getConfig() === undefined ? NO_CONFIG : { ready: true }));

  function route(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (path === '/mcp') {
      if (!checkHost(allowedHosts, req, res)) return;
      void mcp(req, res);
      return;
    }
    if (path === '/sse' || path === '/messages') {
      if (!checkHost(allowedHosts, req, res)) return;
      legacySse(req, res, path, url.slice(path.length)).catch((error: unknown) =>
        answerFailure(res, logger, error, 'legacy SSE request failed'),
      );
      return;
    }
    if (path.startsWith(RESOURCE_METADATA_PATH)) return resourceMetadata(req, res, path);
    if (REST_PATHS.has(path)) {
      void rest(req, res, path, query === -1 ? '' : url.slice(query + 1));
      return;
    }
    if (req.method === 'GET' && path === '/healthz') return sendJson(res, 200, HEALTHY);
    if (req.method === 'GET' && path === '/readyz') {
      const state = readiness();
      return state.ready
        ? sendJson(res, 200, READY)
        : sendJson(res, 503, JSON.stringify({ status: 'not_ready', reason: state.reason }));
    }
    sendJson(res, 404, NOT_FOUND);
  }

  /** RFC 9728 metadata: public (agents read it before they have a token), at the bare and the path-suffixed URL. */
  function resourceMetadata(req: IncomingMessage, res: ServerResponse, path: string): void {
    const providers = getConfig()?.identityProviders;
    if (providers === undefined || !providers.servesMetadataAt(path)) return sendJson(res, 404, NOT_FOUND);
    if (req.method === 'OPTIONS') return sendJson(res, 204, '', METADATA_CORS);
    if (req.method !== 'GET') return sendJson(res, 405, NOT_FOUND, { allow: 'GET' });
    sendJson(res, 200, providers.metadataJson, METADATA_CORS);
  }

  const server = createServer(route);
  let closing: Promise<void> | undefined;
  return {
    server,
    relay,
    run: dispatcher.run,
    configChanged: () => {
      tokens.configChanged(getConfig());
      streams.configChanged(getConfig());
    },
    get notificationStreamCount() {
      return streams.count('session');
    },
    get listenStreamCount() {
      return streams.count('listen');
    },
    get polledSseConnections() {
      return eventStore.polledConnections;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        unsubscribeViews();
        unsubscribeNotifications();
        views.close();
        tokens.close();
        dispatcher.close();
        streams.closeAll();
        eventStore.close();
        relay.calls.close();
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
