import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { RpcErrorCode } from '../mcp/protocol.ts';

/** Buckets for in-gateway time: the interesting range is tens of microseconds to a few milliseconds. */
const OVERHEAD_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05];
/** Buckets for whole tool calls: sub-millisecond stdio calls up to long-running tools. */
const CALL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60];

export type CallOutcome = 'ok' | 'tool_error' | 'rpc_error' | 'unavailable' | 'refused';

/** What the SSE event store reports at scrape time (read then, so nothing is counted per event). */
export interface EventStoreStats {
  readonly size: number;
  readonly heldBytes: number;
  readonly polledConnections: number;
}

interface CallSeries {
  readonly duration: ReturnType<Histogram<'upstream' | 'outcome'>['labels']>;
  readonly overhead: ReturnType<Histogram<'upstream'>['labels']>;
}

/** A metric of `registry` with these labels (none: an empty list). */
function metric<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]) {
  return { name, help, labelNames, registers: [registry] };
}

/**
 * The data plane's Prometheus metrics. Label children are cached per (upstream, outcome), so an
 * observation on the hot path is a map lookup and two bucket increments.
 */
export class DataPlaneMetrics {
  readonly registry: Registry;
  private readonly requests: Counter<'method' | 'status'>;
  private readonly callDuration: Histogram<'upstream' | 'outcome'>;
  private readonly callOverhead: Histogram<'upstream'>;
  private readonly configVersion: Gauge;
  private readonly upstreamUp: Gauge<'upstream' | 'state'>;
  private readonly deviations: Counter<'upstream' | 'kind'>;
  private readonly refusals: Counter<'reason'>;
  private readonly toolCost: Counter<'upstream' | 'tool'>;
  private readonly sandboxRuns: Counter<'outcome'>;
  private readonly series = new Map<string, CallSeries>();

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    this.requests = new Counter(
      metric(registry, 'portcullis_mcp_requests_total', 'MCP requests answered, by method and HTTP status', [
        'method',
        'status',
      ]),
    );
    this.callDuration = new Histogram({
      ...metric(
        registry,
        'portcullis_tool_call_duration_seconds',
        'Tool calls as the agent sees them (gateway and upstream), by upstream and outcome',
        ['upstream', 'outcome'],
      ),
      buckets: CALL_BUCKETS,
    });
    this.callOverhead = new Histogram({
      ...metric(
        registry,
        'portcullis_gateway_overhead_seconds',
        "Time a tool call spends in the gateway itself (the call's duration minus the upstream's)",
        ['upstream'],
      ),
      buckets: OVERHEAD_BUCKETS,
    });
    this.configVersion = new Gauge(
      metric(registry, 'portcullis_config_version', 'The configuration snapshot version this node serves', []),
    );
    this.upstreamUp = new Gauge(
      metric(registry, 'portcullis_upstream_state', '1 for the state each upstream is in', ['upstream', 'state']),
    );
    this.deviations = new Counter(
      metric(
        registry,
        'portcullis_upstream_deviations_total',
        'Answers from upstreams that deviate from the MCP spec and were relayed all the same, by upstream and kind',
        ['upstream', 'kind'],
      ),
    );
    this.refusals = new Counter({
      name: 'portcullis_refusals_total',
      help:
        'Requests refused before they ran, by reason: authentication, invalid_params (also unknown or disallowed ' +
        'tools), method_not_found, forbidden, rate_limit, budget, audit_full, in_flight, bad_request, other',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.toolCost = new Counter({
      name: 'portcullis_tool_cost_micros_total',
      help: 'What tool calls cost (tool price plus upstream-reported cost), micro-units, by upstream and tool',
      labelNames: ['upstream', 'tool'],
      registers: [registry],
    });
    this.sandboxRuns = new Counter({
      name: 'portcullis_sandbox_runs_total',
      help: 'Code-mode scripts run, by outcome: ok, syntax, runtime, timeout, memory, limit',
      labelNames: ['outcome'],
      registers: [registry],
    });
  }

  /** A request refused before it ran (by the pipeline or the HTTP edge), by the reason its error code names. */
  refusal(code: number): void {
    this.refusals.inc({ reason: refusalReason(code) });
  }

  /** What a tool call cost (tool price plus upstream-reported cost), by upstream and the upstream's tool name. */
  cost(upstream: string, tool: string, micros: number): void {
    if (micros > 0) this.toolCost.inc({ upstream, tool }, micros);
  }

  /** One code-mode script run, by outcome: ok, or the failure's kind (syntax, runtime, timeout, memory, limit). */
  sandboxRun(outcome: string): void {
    this.sandboxRuns.inc({ outcome });
  }

  /** One finished tool call: its whole duration and the part spent upstream, in seconds. */
  toolCall(upstream: string, outcome: CallOutcome, totalSeconds: number, upstreamSeconds: number): void {
    const key = `${upstream}\u0000${outcome}`;
    let series = this.series.get(key);
    if (series === undefined) {
      series = { duration: this.callDuration.labels(upstream, outcome), overhead: this.callOverhead.labels(upstream) };
      this.series.set(key, series);
    }
    series.duration.observe(totalSeconds);
    series.overhead.observe(Math.max(0, totalSeconds - upstreamSeconds));
  }

  request(method: string, status: number): void {
    this.requests.inc({ method, status: String(status) });
  }

  configApplied(version: string): void {
    this.configVersion.set(Number(version));
  }

  /** An upstream answer the node carried although it deviates from the spec (see upstream-deviations.ts). */
  upstreamDeviation(upstream: string, kind: string): void {
    this.deviations.inc({ upstream, kind });
  }

  upstreamState(upstream: string, state: string): void {
    for (const candidate of ['connecting', 'ready', 'degraded', 'down', 'disabled']) {
      this.upstreamUp.set({ upstream, state: candidate }, candidate === state ? 1 : 0);
    }
  }

  /**
   * The 2025-era SSE event store: streams and bytes held (to size --sse-max-streams and
   * --sse-max-bytes) and connections closed by SSE polling, read from `stats` at each scrape.
   */
  eventStore(stats: EventStoreStats): void {
    const registers = [this.registry];
    new Gauge({
      name: 'portcullis_sse_resumable_streams',
      help: '2025-era SSE streams held for Last-Event-ID resumption',
      registers,
      collect() {
        this.set(stats.size);
      },
    });
    new Gauge({
      name: 'portcullis_sse_event_store_bytes',
      help: 'Bytes of SSE events held for resumption over all streams',
      registers,
      collect() {
        this.set(stats.heldBytes);
      },
    });
    new Counter({
      name: 'portcullis_sse_polled_connections_total',
      help: 'SSE connections the node closed for SSE polling (--sse-max-stream-seconds), their streams going on',
      registers,
      collect() {
        this.reset();
        this.inc(stats.polledConnections);
      },
    });
  }

  /**
   * Where rate limits are counted, read at each scrape: 1 for the backend in use (`redis` for exact
   * global limits, `local` for this node's share), and how often the node fell back to local shares.
   */
  rateLimitBackend(backend: () => 'redis' | 'local', fallbacks: () => number): void {
    const registers = [this.registry];
    new Gauge({
      name: 'portcullis_rate_limit_backend',
      help:
        '1 for where this node counts rate limits: "redis" (exact across nodes) or "local" (its share of each ' +
        'limit; also while Redis does not answer)',
      labelNames: ['backend'],
      registers,
      collect() {
        const current = backend();
        this.set({ backend: 'redis' }, current === 'redis' ? 1 : 0);
        this.set({ backend: 'local' }, current === 'local' ? 1 : 0);
      },
    });
    new Counter({
      name: 'portcullis_rate_limit_redis_fallbacks_total',
      help: 'Times this node fell back from Redis to local rate-limit shares because Redis did not answer in time',
      registers,
      collect() {
        this.reset();
        this.inc(fallbacks());
      },
    });
  }

  /**
   * The config stream, read at each scrape: whether it is up, and how stale the configuration may be
   * (to alert on, and to size `--max-config-age-seconds`).
   */
  configStream(source: { readonly connected: boolean; configAgeMs(): number | undefined }): void {
    const registers = [this.registry];
    new Gauge({
      name: 'portcullis_config_age_seconds',
      help:
        'Seconds since this node last knew its configuration was current: 0 while the control-plane stream is ' +
        'up, then the time since it went down (NaN before any configuration)',
      registers,
      collect() {
        const age = source.configAgeMs();
        this.set(age === undefined ? Number.NaN : age / 1000);
      },
    });
    new Gauge({
      name: 'portcullis_control_plane_connected',
      help: '1 while the config stream to a control plane is up',
      registers,
      collect() {
        this.set(source.connected ? 1 : 0);
      },
    });
  }

  /** The audit spool, read at each scrape: bytes on disk, records not acknowledged, records lost, full. */
  auditSpool(stats: {
    readonly sizeBytes: number;
    readonly backlog: number;
    readonly dropped: number;
    readonly full: boolean;
  }): void {
    const registers = [this.registry];
    new Gauge({
      name: 'portcullis_audit_spool_bytes',
      help: 'Bytes of audit records in the on-disk spool (written, not yet acknowledged by the control plane)',
      registers,
      collect() {
        this.set(stats.sizeBytes);
      },
    });
    new Gauge({
      name: 'portcullis_audit_backlog_records',
      help: 'Audit records not yet stored by the control plane',
      registers,
      collect() {
        this.set(stats.backlog);
      },
    });
    new Gauge({
      name: 'portcullis_audit_spool_full',
      help: '1 while the audit spool is full (the node refuses calls or drops records, per --audit-when-full)',
      registers,
      collect() {
        this.set(stats.full ? 1 : 0);
      },
    });
    new Counter({
      name: 'portcullis_audit_records_dropped_total',
      help: 'Audit records lost because the spool was full (or could not be written)',
      registers,
      collect() {
        this.reset();
        this.inc(stats.dropped);
      },
    });
  }

  /** The Prometheus text exposition. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** JSON-RPC codes of refusals (mcp/protocol.ts RpcErrorCode) to their metric label: a fixed, small set. */
const REFUSAL_REASONS: ReadonlyMap<number, string> = new Map<number, string>([
  [RpcErrorCode.Unauthenticated, 'authentication'],
  [RpcErrorCode.InvalidParams, 'invalid_params'],
  [RpcErrorCode.MethodNotFound, 'method_not_found'],
  [RpcErrorCode.Forbidden, 'forbidden'],
  [RpcErrorCode.RateLimited, 'rate_limit'],
  [RpcErrorCode.BudgetExhausted, 'budget'],
  [RpcErrorCode.AuditUnavailable, 'audit_full'],
  [RpcErrorCode.TooManyInFlight, 'in_flight'],
  [RpcErrorCode.ParseError, 'bad_request'],
  [RpcErrorCode.InvalidRequest, 'bad_request'],
  [RpcErrorCode.TransportError, 'bad_request'],
  [RpcErrorCode.HeaderMismatch, 'bad_request'],
  [RpcErrorCode.SessionNotFound, 'bad_request'],
]);

function refusalReason(code: number): string {
  return REFUSAL_REASONS.get(code) ?? 'other';
}
