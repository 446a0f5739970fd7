import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startMetricsServer, type Logger, type MetricsServer } from '../../common/src/index.ts';
import { ConfigClient } from './config/config-client.ts';
import type { ConfigStreamTls, ReconnectBackoff } from './config/channel-options.ts';
import { DEFAULT_READINESS, NodeReadiness, type ReadinessOptions } from './observability/readiness.ts';
import type { AppliedConfig } from './config/applied-config.ts';
import type { EventStoreOptions } from './http/event-store.ts';
import type { CallAdmissionOptions } from './http/in-flight.ts';
import { createDataPlaneServer } from './http/server.ts';
import { effectiveAllowedHosts, type AllowedHost } from './http/host-guard.ts';
import { DataPlaneMetrics } from './observability/metrics.ts';
import type { Tracing } from '../../common/src/tracing.ts';
import { upstreamStateToJSON } from '../../proto/gen/portcullis/v1/config.ts';
import { UpstreamPool } from './upstream/upstream-pool.ts';
import { AuditContent, type AuditContentOptions } from './audit/audit-content.ts';
import { AuditRecorder, type SpoolFullPolicy } from './audit/audit-recorder.ts';
import { AuditShipper } from './audit/audit-shipper.ts';
import { AuditSpool } from './audit/audit-spool.ts';
import { ApprovalAudit } from './approvals/approval-audit.ts';
import { PendingApprovals } from './approvals/pending-approvals.ts';
import { DEFAULT_HEALTH_FAILURE_THRESHOLD, DEFAULT_HEALTH_INTERVAL_MS } from './upstream/upstream-settings.ts';
import { SandboxPool, type SandboxPoolOptions } from './code-mode/sandbox-pool.ts';
import { RateLimiter } from './policy/rate-limits.ts';
import { RedisRateLimiter, type RedisRateLimitOptions } from './policy/redis-rate-limits.ts';
import { BudgetLedger } from './policy/budget-ledger.ts';

export { SOFTWARE_VERSION } from '../../common/src/version.ts';
import { SOFTWARE_VERSION } from '../../common/src/version.ts';

export interface DataPlaneOptions {
  /** host:port of the control plane's gRPC config stream. */
  controlPlaneAddress: string;
  /** More replicas to fail over to, after controlPlaneAddress. */
  controlPlaneFallbacks?: readonly string[];
  /** TLS of the config stream (and the node's certificate, for mTLS); plaintext when undefined. */
  controlPlaneTls?: ConfigStreamTls;
  /** Reconnect backoff to the control plane (default 100 ms to 5 s). */
  controlPlaneReconnect?: ReconnectBackoff;
  /** May be omitted when the control plane authenticates nodes by client certificate alone. */
  nodeToken: string | undefined;
  /** Stable node name; defaults to `<hostname>-<port>`. */
  nodeId: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  maxBodyBytes: number;
  /** How long a call held for approval waits when its rule sets no timeout (default 5 minutes). */
  approvalTimeoutMs?: number;
  snapshotCache: string | undefined;
  upstreamConnectTimeoutMs: number;
  upstreamCallTimeoutMs: number;
  /** How often each upstream is pinged, unless its snapshot says otherwise (default 15 s). */
  upstreamHealthIntervalMs?: number;
  /** Consecutive failed pings after which an upstream is DOWN and reconnected (default 3). */
  upstreamHealthFailureThreshold?: number;
  /** Anonymous access (off when undefined): requests without credentials act as this virtual key id. */
  anonymousKeyId?: string;
  /** MCP authorization: the least time between two JWKS fetches of one issuer for unknown key ids (default 30 s). */
  jwksRefreshCooldownMs?: number;
  /** How long a 2025-era session id is honoured after it was issued (default 24 h). */
  sessionMaxAgeMs?: number;
  /**
   * Accepted `Host`/`Origin` hosts (DNS-rebinding protection). Undefined or empty: the loopback names
   * when `host` is a loopback address, else no check.
   */
  allowedHosts?: readonly AllowedHost[];
  /**
   * 2025-era SSE streams: the resume window, the bounds of the event store, the `retry` sent to
   * agents and SSE polling (closing connections after `maxConnectionMs`); defaults in event-store.ts.
   */
  sse?: EventStoreOptions;
  /** Requests in flight per key and per session on this node (defaults in http/in-flight.ts). */
  callAdmission?: CallAdmissionOptions;
  /** What `/readyz` waits for (default: the first snapshot's upstreams, at most 30 s; no staleness limit). */
  readiness?: ReadinessOptions;
  /**
   * The audit trail: records spooled in `spoolDir` (one directory per node) and shipped to the control
   * plane; off when undefined (no records are kept).
   */
  audit?: {
    spoolDir: string;
    /** The spool is full past this many bytes on disk. */
    maxSpoolBytes: number;
    /** What the node does while it is full: refuse new calls, or serve and count the records lost. */
    whenFull: SpoolFullPolicy;
    content?: AuditContentOptions;
  };
  /** Serve Prometheus metrics on this address (off when undefined; never on the agent-facing port). */
  metricsListen?: { host: string; port: number; token?: string };
  /** OpenTelemetry traces (`startTracing`); off when undefined. Its owner shuts it down. */
  tracing?: Tracing | undefined;
  /**
   * Exact global rate limits: every limit counted in one token bucket in this Redis, shared by all
   * nodes, with a fallback to this node's local share while Redis does not answer. Off when
   * undefined: each node enforces its share of every limit.
   */
  rateLimitRedis?: RedisRateLimitOptions;
  /** Code mode's sandbox pool (off when undefined: no key sees the meta-tools on this node). */
  sandbox?: SandboxPoolOptions;
  logger: Logger;
}

export interface DataPlane {
  readonly nodeId: string;
  /** The agents' endpoint, e.g. http://127.0.0.1:8080/mcp */
  readonly mcpUrl: string;
  /** `http://host:port/metrics` when metricsListen was given. */
  readonly metricsUrl: string | undefined;
  /** The configuration being served, if any. */
  readonly config: AppliedConfig | undefined;
  /** Resolves once the node serves a configuration (at once when it already does); false on timeout. */
  whenConfigured(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Starts one data-plane node: it listens for agents at once (answering 503 until it has a
 * snapshot), follows the control plane's config stream, and keeps its upstream pool in step
 * with each snapshot.
 */
export async function startDataPlane(options: DataPlaneOptions): Promise<DataPlane> {
  const logger = options.logger.child({ plane: 'data', node: options.nodeId });
  let configClient: ConfigClient | undefined;
  const metrics = new DataPlaneMetrics();
  const upstreamNames = new Map<string, string>();
  let configured: () => void = () => undefined;
  const firstConfig = new Promise<void>((resolve) => (configured = resolve));
  const readiness = new NodeReadiness(options.readiness ?? DEFAULT_READINESS, {
    hasConfig: () => configClient?.config !== undefined,
    configAgeMs: () => configClient?.configAgeMs(),
  });
  const pool = new UpstreamPool({
    clientInfo: { name: 'portcullis', version: SOFTWARE_VERSION },
    defaults: {
      connectTimeoutMs: options.upstreamConnectTimeoutMs,
      callTimeoutMs: options.upstreamCallTimeoutMs,
      healthIntervalMs: options.upstreamHealthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS,
      healthFailureThreshold: options.upstreamHealthFailureThreshold ?? DEFAULT_HEALTH_FAILURE_THRESHOLD,
    },
    logger,
    onReport: (report) => {
      configClient?.report(report);
      readiness.upstreamState(report.upstreamId, report.state);
      const name = upstreamNames.get(report.upstreamId);
      if (name !== undefined)
        metrics.upstreamState(name, upstreamStateToJSON(report.state).replace('UPSTREAM_STATE_', '').toLowerCase());
    },
    onDeviation: (upstream, kind) => metrics.upstreamDeviation(upstream, kind),
  });
  const auditContent = options.audit === undefined ? undefined : new AuditContent(options.audit.content);
  const sandbox = options.sandbox === undefined ? undefined : new SandboxPool({ ...options.sandbox, logger });
  const localRateLimiter = new RateLimiter();
  const redisRateLimiter =
    options.rateLimitRedis === undefined
      ? undefined
      : new RedisRateLimiter(localRateLimiter, options.rateLimitRedis, logger);
  const rateLimiter = redisRateLimiter ?? localRateLimiter;
  metrics.rateLimitBackend(
    () => redisRateLimiter?.backend ?? 'local',
    () => redisRateLimiter?.fallbacks ?? 0,
  );
  await redisRateLimiter?.start();
  const budgetLedger = new BudgetLedger((entries) => configClient?.reportSpend(entries));
  let spool: AuditSpool | undefined;
  let recorder: AuditRecorder | undefined;
  if (options.audit !== undefined) {
    spool = await AuditSpool.open({ dir: options.audit.spoolDir, maxBytes: options.audit.maxSpoolBytes, logger });
    recorder = new AuditRecorder({
      node: options.nodeId,
      spool,
      content: auditContent ?? new AuditContent(options.audit.content),
      whenFull: options.audit.whenFull,
      logger,
    });
    metrics.auditSpool(spool);
  }
  const approvals = new PendingApprovals({
    ...(auditContent === undefined ? {} : { content: auditContent }),
    ...(recorder === undefined ? {} : { audit: new ApprovalAudit(recorder) }),
    nodeId: options.nodeId,
    link: {
      request: (request) => configClient?.requestApproval(request) ?? false,
      withdraw: (withdrawal) => configClient?.withdrawApproval(withdrawal),
    },
    logger,
    ...(options.approvalTimeoutMs === undefined ? {} : { defaultTimeoutMs: options.approvalTimeoutMs }),
  });
  const http = createDataPlaneServer({
    rateLimiter,
    budgetLedger,
    approvals,
    getConfig: () => configClient?.config,
    upstreams: pool,
    metrics,
    logger,
    maxBodyBytes: options.maxBodyBytes,
    serverInfo: { name: 'portcullis', version: SOFTWARE_VERSION },
    anonymousKeyId: options.anonymousKeyId,
    ...(options.jwksRefreshCooldownMs === undefined ? {} : { jwksRefreshCooldownMs: options.jwksRefreshCooldownMs }),
    sessionMaxAgeMs: options.sessionMaxAgeMs,
    allowedHosts: effectiveAllowedHosts(options.host, options.allowedHosts),
    nodeId: options.nodeId,
    eventStore: options.sse,
    callAdmission: options.callAdmission,
    readiness: () => readiness.check(),
    sandbox,
    audit: recorder,
    tracing: options.tracing,
  });
  if (options.anonymousKeyId !== undefined)
    logger.warn(
      { keyId: options.anonymousKeyId },
      'anonymous access is on: requests without credentials act as this virtual key',
    );
  http.server.listen(options.port, options.host);
  await once(http.server, 'listening');
  const address = http.server.address() as AddressInfo;
  const mcpUrl = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${address.port}/mcp`;

  configClient = new ConfigClient({
    addresses: [options.controlPlaneAddress, ...(options.controlPlaneFallbacks ?? [])],
    nodeToken: options.nodeToken,
    tls: options.controlPlaneTls,
    reconnect: options.controlPlaneReconnect,
    nodeId: options.nodeId,
    softwareVersion: SOFTWARE_VERSION,
    mcpUrl,
    cacheFile: options.snapshotCache,
    logger,
    nodeTag: http.relay.nodeTag,
    onRelay: (envelope) =>
      envelope.kind?.$case === 'approvalDecision'
        ? approvals.decided(envelope.kind.value)
        : http.relay.receive(envelope),
    onShare: (liveNodes) => localRateLimiter.setLiveNodes(liveNodes),
    onLeases: (leases) => budgetLedger.apply(leases),
    onConnected: () => {
      http.relay.announceEnded();
      // Held calls survive a control-plane restart: whatever still waits is sent again (stored once).
      for (const request of approvals.pendingRequests()) configClient?.requestApproval(request);
    },
    // Audit records are shipped once the control plane said whether it takes them as rows.
    onControlPlaneKnown: ({ takesAuditRows }) => shipper?.connected(takesAuditRows),
    onDisconnected: () => shipper?.disconnected(),
    onAuditAck: (ack) => shipper?.acked(ack.batchId, ack.rejected),
    onApplied: (config) => {
      auditContent?.follow(config.auditContent);
      for (const upstream of config.upstreams) upstreamNames.set(upstream.id, upstream.name);
      readiness.configApplied(config.upstreams);
      pool.apply(config.upstreams);
      metrics.configApplied(config.version);
      configured();
      configClient?.retainReports(new Set(config.upstreams.map((u) => u.id)));
      http.configChanged();
    },
  });
  http.relay.connect((envelope) => configClient?.relay(envelope) ?? false);
  const shippingClient = configClient;
  const shipper =
    spool === undefined ? undefined : new AuditShipper(spool, (batch) => shippingClient.sendAudit(batch), logger);
  const stream = configClient;
  metrics.configStream({
    get connected() {
      return stream.connected;
    },
    configAgeMs: () => stream.configAgeMs(),
  });
  let metricsServer: MetricsServer | undefined;
  try {
    if (options.metricsListen) metricsServer = await startMetricsServer({ ...options.metricsListen, metrics, logger });
    await configClient.start();
  } catch (error) {
    configClient.close();
    await Promise.all([http.close(), metricsServer?.close(), pool.close(), redisRateLimiter?.close()]);
    await spool?.close();
    throw error;
  }
  logger.info({ mcpUrl, metricsUrl: metricsServer?.url }, 'data plane listening');

  let closing: Promise<void> | undefined;
  return {
    nodeId: options.nodeId,
    mcpUrl,
    metricsUrl: metricsServer?.url,
    get config() {
      return configClient?.config;
    },
    async whenConfigured(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
      const result = await Promise.race([firstConfig.then(() => true), timedOut]);
      clearTimeout(timer);
      return result;
    },
    close() {
      closing ??= (async () => {
        approvals.close();
        configClient?.close();
        await Promise.all([http.close(), metricsServer?.close()]);
        await Promise.all([pool.close(), sandbox?.close(), redisRateLimiter?.close()]);
        await spool?.close();
      })();
      return closing;
    },
  };
}
