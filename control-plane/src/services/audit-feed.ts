import type { Logger } from '../../../common/src/index.ts';
import { errorMessage } from '../../../common/src/index.ts';
import type { AuditBus } from '../config/change-bus.ts';
import type { ChainedRow } from './audit-chain.ts';
import type { AuditEventView, AuditFilter } from './audit-queries.ts';
import { AUDIT_KINDS, AUDIT_STATUSES } from './audit-queries.ts';

/** Reads the stored records with `seq` from `first` to `last`, in seq order. */
export type AuditRangeReader = (first: string, last: string) => Promise<AuditEventView[]>;

/**
 * The audit records stored by any control-plane replica sharing the database, as they are committed:
 * the source of the `auditEventAdded` subscription. This replica's own inserts pass here directly
 * (`stored`, after the commit) and are announced to the other replicas as a `seq` range over the bus
 * (one NOTIFY per committed batch, not per record: the records themselves are too large for NOTIFY
 * payloads); a range another replica announces is read back from the database, only while someone
 * here listens, and passed on in order. Best effort across replicas: a range announced while this
 * replica's listening connection is down is not seen here (the records are in `auditEvents`).
 */
export class AuditFeed {
  private readonly listeners = new Set<(event: AuditEventView) => void>();
  /** Remote ranges are read one after another, so that their records reach subscribers in commit order. */
  private reading: Promise<void> = Promise.resolve();

  constructor(
    private readonly bus?: AuditBus,
    private readonly read?: AuditRangeReader,
    private readonly logger?: Logger,
  ) {
    bus?.onAudit((first, last) => this.remote(first, last));
  }

  onStored(listener: (event: AuditEventView) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** After the commit of rows this replica inserted (one transaction's: consecutive seqs). */
  stored(rows: readonly ChainedRow[]): void {
    const first = rows[0];
    const last = rows.at(-1);
    if (first !== undefined && last !== undefined) this.bus?.publishAudit(first.seq, last.seq);
    if (this.listeners.size === 0) return;
    for (const row of rows) this.emit(toView(row));
  }

  private emit(event: AuditEventView): void {
    for (const listener of this.listeners) listener(event);
  }

  /** Another replica committed the rows `first`..`last`: read and pass them on, if anyone listens. */
  private remote(first: string, last: string): void {
    const read = this.read;
    if (read === undefined || this.listeners.size === 0) return;
    this.reading = this.reading.then(async () => {
      if (this.listeners.size === 0) return;
      try {
        for (const event of await read(first, last)) this.emit(event);
      } catch (error) {
        this.logger?.warn(
          { err: errorMessage(error), first, last },
          "could not read another replica's audit records for subscribers",
        );
      }
    });
  }
}

function toView(row: ChainedRow): AuditEventView {
  return {
    id: row.id,
    seq: row.seq,
    time: row.time,
    node: row.nodeId,
    kind: row.kind.toUpperCase(),
    status: row.status.toUpperCase(),
    method: row.method,
    keyId: row.keyId,
    teamId: row.teamId,
    customerId: row.customerId,
    subject: row.subject,
    upstream: row.upstream,
    tool: row.tool,
    arguments: row.arguments,
    result: row.result,
    errorCode: row.errorCode,
    errorMessage: row.errorMessage,
    latencyMs: row.latencyUs / 1000,
    gatewayLatencyMs: row.gatewayLatencyUs / 1000,
    upstreamLatencyMs: row.upstreamLatencyUs === null ? null : row.upstreamLatencyUs / 1000,
    costMicros: row.costMicros === null ? null : Number(row.costMicros),
    modelCostMicros:
      row.modelCostMicros === undefined || row.modelCostMicros === null ? null : Number(row.modelCostMicros),
    parentId: row.parentId,
    traceId: row.traceId,
    sessionId: row.sessionId,
    clientName: row.clientName,
    clientVersion: row.clientVersion,
  };
}

/** `auditEvents`' filter semantics, in memory: every present field narrows; `from` included, `to` excluded. */
export function matchesAuditFilter(filter: AuditFilter, event: AuditEventView): boolean {
  const is = (wanted: string | null | undefined, actual: string | null) =>
    wanted === undefined || wanted === null || wanted === actual;
  return (
    (filter.from == null || event.time >= filter.from) &&
    (filter.to == null || event.time < filter.to) &&
    (filter.kind == null || AUDIT_KINDS[filter.kind].toUpperCase() === event.kind) &&
    (filter.status == null || AUDIT_STATUSES[filter.status].toUpperCase() === event.status) &&
    is(filter.keyId, event.keyId) &&
    is(filter.teamId, event.teamId) &&
    is(filter.customerId, event.customerId) &&
    is(filter.upstream, event.upstream) &&
    is(filter.tool, event.tool) &&
    is(filter.parentId, event.parentId)
  );
}
