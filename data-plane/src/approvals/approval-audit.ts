import type { AuditRecorder } from '../audit/audit-recorder.ts';
import {
  parentIdOf,
  sessionRef,
  traceIdOf,
  type ApprovalAuditStatus,
  type AuditRecord,
} from '../audit/audit-record.ts';
import { isPlainObject } from '../mcp/json-rpc.ts';
import { CLIENT_INFO_META_KEY } from '../mcp/protocol.ts';
import type { Operation } from '../pipeline/operation.ts';
import { PARENT_REQUEST_META_KEY, TRACEPARENT_META_KEY } from '../pipeline/steps/record.ts';

/** Who is asked to approve a held call: an operator through GraphQL, or the person at the agent's client. */
export type ApprovalVia = 'OPERATOR' | 'CLIENT';

/** One held call, as its approval records name it. */
export interface AuditedApproval {
  readonly approvalId: string;
  readonly operation: Operation;
  /** The exposed tool name the agent called, and its upstream. */
  readonly tool: string;
  readonly upstream: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly via: ApprovalVia;
  /** ms since the epoch. */
  readonly requestedAt: number;
}

/**
 * The audit records of approvals: one `approval_request` (status pending) when a call is held, one
 * `approval_decision` (approved, denied, timed_out, withdrawn) when it stops waiting. Both name the
 * held call's own record as their parent, so `auditEvents(filter: {parentId})` finds them with any
 * nested record. The decision's `subject` is who decided; its `result` (JSON, kept when content
 * logging is off, as it is the decision and not the call's content) says how, when and why.
 * Each resolves once the record is on the spool (undefined when the spool is full and serving on).
 */
export class ApprovalAudit {
  constructor(private readonly recorder: AuditRecorder) {}

  requested(call: AuditedApproval, reason: string, expiresAt: number): Promise<void> | undefined {
    const record = this.base(call, 'approval_request', 'pending');
    if (this.recorder.content.allows(call.upstream, record.keyId, call.operation.principal?.auditContent))
      record.arguments = this.recorder.content.clip(call.arguments);
    record.result = JSON.stringify({
      approvalId: call.approvalId,
      via: call.via,
      reason,
      expiresAt: new Date(expiresAt).toISOString(),
    });
    return this.recorder.record(record);
  }

  decided(
    call: AuditedApproval,
    status: Exclude<ApprovalAuditStatus, 'pending'>,
    decidedBy: string,
    decidedAt: number,
    reason: string,
  ): Promise<void> | undefined {
    const record = this.base(call, 'approval_decision', status);
    record.subject = decidedBy.slice(0, 500);
    record.result = JSON.stringify({
      approvalId: call.approvalId,
      via: call.via,
      decidedBy,
      decidedAt: new Date(decidedAt).toISOString(),
      reason: reason.slice(0, 4096),
    });
    const waitedUs = Math.max(0, Math.round((decidedAt - call.requestedAt) * 1000));
    record.latencyUs = Math.min(waitedUs, 2_147_483_647);
    record.gatewayLatencyUs = record.latencyUs;
    return this.recorder.record(record);
  }

  /** What both records say of the held call (as the record step would say it of the call itself). */
  private base(call: AuditedApproval, kind: AuditRecord['kind'], status: ApprovalAuditStatus): AuditRecord {
    const record = this.recorder.start(kind, status);
    const operation = call.operation;
    const principal = operation.principal;
    const meta = isPlainObject(operation.params['_meta']) ? operation.params['_meta'] : undefined;
    record.method = operation.method;
    record.keyId = principal?.keyId ?? operation.keyId ?? null;
    record.teamId = principal?.teamId ?? null;
    record.customerId = principal?.customerId ?? null;
    record.subject = principal?.identity?.subject ?? null;
    record.upstream = call.upstream;
    record.tool = call.tool;
    // The held call's record; without one (audit off for the call), its originating request.
    record.parentId =
      operation.auditId ??
      operation.parentId ??
      parentIdOf(operation.origin?.parentId) ??
      parentIdOf(meta?.[PARENT_REQUEST_META_KEY]) ??
      null;
    record.traceId = traceIdOf(operation.origin?.traceparent) ?? traceIdOf(meta?.[TRACEPARENT_META_KEY]);
    record.sessionId = sessionRef(operation.sessionId);
    const client = meta?.[CLIENT_INFO_META_KEY] ?? operation.origin?.clientInfo;
    if (isPlainObject(client)) {
      record.clientName = typeof client['name'] === 'string' ? client['name'].slice(0, 200) : null;
      record.clientVersion = typeof client['version'] === 'string' ? client['version'].slice(0, 100) : null;
    }
    return record;
  }
}
