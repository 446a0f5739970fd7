import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Buckets for snapshot builds: incremental builds take milliseconds, whole ones at large key counts seconds. */
const BUILD_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/** GraphQL operation types (the label's only values besides `unknown`, for requests that never parsed). */
export type GraphqlOperationType = 'query' | 'mutation' | 'subscription' | 'unknown';

/**
 * The control plane's Prometheus metrics (`--metrics-listen`): the config stream's nodes, the
 * snapshots it publishes, audit ingest, approvals waiting, GraphQL requests. Labels are bounded:
 * outcome and operation-type enums only, never node ids, keys or operation names.
 */
export class ControlPlaneMetrics {
  readonly registry: Registry;
  private readonly snapshotVersion: Gauge;
  private readonly snapshotBuild: Histogram;
  private readonly auditRecords: Counter<'outcome'>;
  private readonly auditBacklog: Gauge;
  private readonly graphqlRequests: Counter<'operation' | 'outcome'>;
  private backlog = 0;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    this.snapshotVersion = new Gauge({
      name: 'portcullis_config_snapshot_version',
      help: 'The newest configuration snapshot version this control plane has published',
      registers,
    });
    this.snapshotBuild = new Histogram({
      name: 'portcullis_config_snapshot_build_seconds',
      help: 'Time to build a configuration snapshot (database read and assembly)',
      buckets: BUILD_BUCKETS,
      registers,
    });
    this.auditRecords = new Counter({
      name: 'portcullis_audit_ingest_records_total',
      help: 'Audit records received from nodes, by outcome: stored, duplicate (stored before), rejected (invalid)',
      labelNames: ['outcome'],
      registers,
    });
    this.auditBacklog = new Gauge({
      name: 'portcullis_audit_ingest_backlog_records',
      help: 'Audit records received from nodes and not stored yet (waiting for or retrying the database)',
      registers,
    });
    this.graphqlRequests = new Counter({
      name: 'portcullis_graphql_requests_total',
      help: 'GraphQL requests by operation type and outcome (ok, error)',
      labelNames: ['operation', 'outcome'],
      registers,
    });
  }

  snapshotPublished(version: string, buildSeconds: number | undefined): void {
    this.snapshotVersion.set(Number(version));
    if (buildSeconds !== undefined) this.snapshotBuild.observe(buildSeconds);
  }

  /** A batch arrived: `valid` records wait to be stored, `rejected` were invalid. */
  auditReceived(valid: number, rejected: number): void {
    this.backlog += valid;
    this.auditBacklog.set(this.backlog);
    if (rejected > 0) this.auditRecords.inc({ outcome: 'rejected' }, rejected);
  }

  /** A batch of `records` was committed, `stored` of them new (the rest were stored before). */
  auditStored(records: number, stored: number): void {
    this.backlog = Math.max(0, this.backlog - records);
    this.auditBacklog.set(this.backlog);
    if (stored > 0) this.auditRecords.inc({ outcome: 'stored' }, stored);
    if (records > stored) this.auditRecords.inc({ outcome: 'duplicate' }, records - stored);
  }

  /** A batch that will not be stored here after all (its stream ended first): it leaves the backlog. */
  auditAbandoned(records: number): void {
    this.backlog = Math.max(0, this.backlog - records);
    this.auditBacklog.set(this.backlog);
  }

  graphqlRequest(operation: GraphqlOperationType, ok: boolean): void {
    this.graphqlRequests.inc({ operation, outcome: ok ? 'ok' : 'error' });
  }

  /**
   * Audit inserts done again because a record of theirs was stored already (each a failed COPY, an ERROR line
   * in PostgreSQL's log), read from the store at each scrape. A node's new stream has its first ids looked
   * up instead, so this stays at 0 unless batches repeat where none were expected.
   */
  auditInsertRetries(store: { readonly failedInserts: number }): void {
    let reported = 0;
    new Counter({
      name: 'portcullis_audit_ingest_retried_inserts_total',
      help: 'Audit inserts done again without the records stored already (each a failed insert in the database log)',
      registers: [this.registry],
      collect() {
        const now = store.failedInserts;
        if (now > reported) this.inc(now - reported);
        reported = now;
      },
    });
  }

  /** Nodes on the config stream, counted at each scrape (distinct node ids with a live stream). */
  configStreams(source: { liveNodes(): number }): void {
    new Gauge({
      name: 'portcullis_config_stream_nodes',
      help: 'Data-plane nodes connected to this control plane on the config stream',
      registers: [this.registry],
      collect() {
        this.set(source.liveNodes());
      },
    });
  }

  /** Approval requests waiting for a decision, read at each scrape (NaN when the database does not answer). */
  approvals(source: { pendingCount(): Promise<number> }): void {
    new Gauge({
      name: 'portcullis_approvals_pending',
      help: 'Held tool calls waiting for a person to approve or deny them',
      registers: [this.registry],
      async collect() {
        this.set(await source.pendingCount().catch(() => Number.NaN));
      },
    });
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
