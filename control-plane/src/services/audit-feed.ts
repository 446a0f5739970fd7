import type { ChainedRow } from './audit-chain.ts';
import type { AuditEventView, AuditFilter } from './audit-queries.ts';
import { AUDIT_KINDS, AUDIT_STATUSES } from './audit-queries.ts';

/**
 * The audit records this process stored, as they are committed: the source of the
 * `auditEventAdded` subscription. Only this replica's inserts pass here (audit records are too
 * large for the change bus's NOTIFY payloads), so a subscriber sees what its replica stored.
 */
export class AuditFeed {
  private readonly listeners = new Set<(event: AuditEventView) => void>();

  onStored(listener: (event: AuditEventView) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** After the commit. Costs nothing while nobody listens. */
  stored(rows: readonly ChainedRow[]): void {
    if (this.listeners.size === 0) return;
    for (const row of rows) {
      const event = toView(row);
      for (const listener of this.listeners) listener(event);
    }
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
