import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ApprovalDecision, ApprovalRequest, ApprovalWithdrawal } from '../../../proto/gen/portcullis/v1/config.ts';
import type { AuditContent } from '../audit/audit-content.ts';
import { isPlainObject } from '../mcp/json-rpc.ts';
import type { Outcome } from '../pipeline/operation.ts';
import { TOOL_ERROR_META_KEY } from '../pipeline/tool-results.ts';
import type { ApprovalAudit, AuditedApproval } from './approval-audit.ts';
import type { ApprovalGate, HeldCall } from './approval-gate.ts';

/** How the node reaches the control plane about held calls (the config stream). */
export interface ApprovalLink {
  /** Sends a request now if the stream is up (false: it goes with the next connection's re-send). */
  request(request: ApprovalRequest): boolean;
  withdraw(withdrawal: ApprovalWithdrawal): void;
}

export interface PendingApprovalsOptions {
  readonly link: ApprovalLink;
  readonly logger: Logger;
  /** How long a call waits when its rule sets no timeout (default 5 minutes). */
  readonly defaultTimeoutMs?: number;
  /** How often a waiting agent that sent a progressToken is told it still waits (default 1 s). */
  readonly progressIntervalMs?: number;
  /**
   * The audit content switches: where content logging is off for the call's key or upstream, the
   * arguments do not leave the node in the approval request either (it carries `{}`), since the
   * control plane stores and shows that request. Absent: arguments are sent.
   */
  readonly content?: AuditContent;
  /** Where the request and the decision are recorded (absent: the node keeps no audit trail). */
  readonly audit?: ApprovalAudit;
  /** This node's id: a timeout is decided by `node:<id>`. */
  readonly nodeId?: string;
}

export const DEFAULT_APPROVAL_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_PROGRESS_INTERVAL_MS = 1000;

type EndReason = 'APPROVAL_DENIED' | 'APPROVAL_TIMED_OUT' | 'APPROVAL_WITHDRAWN' | 'NODE_STOPPING';

/** How a wait ended, as its approval_decision record says it. */
interface Ending {
  readonly status: 'approved' | 'denied' | 'timed_out' | 'withdrawn';
  readonly decidedBy: string;
  readonly reason: string;
  /** ms since the epoch; default now. */
  readonly at?: number;
}

interface Waiter {
  readonly request: ApprovalRequest;
  /** Ends the wait (once its decision is recorded): undefined lets the call run. */
  finish(outcome: Outcome | undefined, ending: Ending): void;
}

/** The refusal a held call ends with: a tool result marked as an error, saying why, for the model to read. */
function ended(tool: string, reason: EndReason, text: string, approvalId: string): Outcome {
  return {
    kind: 'result',
    result: {
      content: [{ type: 'text', text: `Tool ${tool} was not run: ${text}` }],
      isError: true,
      _meta: { [TOOL_ERROR_META_KEY]: { reason, approvalId, retryable: reason === 'APPROVAL_TIMED_OUT' } },
    },
  };
}

/**
 * Calls held on this node until a person decides (the ApprovalGate the policy step uses). Each is
 * sent to the control plane as an ApprovalRequest, again after every reconnect while it waits, so
 * a control-plane restart loses none; the decision comes back over the config stream. A call ends
 * when it is decided, when its timeout passes (refused, and the control plane told), or when the
 * agent cancels (withdrawn). While it waits, an agent that sent a progressToken gets progress
 * notifications. Nothing of a held call survives this process: a restarted node's control plane
 * marks its calls NODE_RESTARTED, and their agents' connections ended with the process.
 */
export class PendingApprovals implements ApprovalGate {
  private readonly waiting = new Map<string, Waiter>();
  private readonly defaultTimeoutMs: number;
  private readonly progressIntervalMs: number;

  constructor(private readonly options: PendingApprovalsOptions) {
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS;
    this.progressIntervalMs = options.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  }

  private contentAllowed(upstream: string, keyId: string): boolean {
    return this.options.content?.allows(upstream, keyId) ?? true;
  }

  /** How many calls wait on this node. */
  get size(): number {
    return this.waiting.size;
  }

  hold(call: HeldCall): Promise<Outcome | undefined> {
    const { operation, tool } = call;
    const id = randomUUID();
    const now = Date.now();
    const timeoutMs = call.decision.approvalTimeoutMs || this.defaultTimeoutMs;
    const principal = operation.principal!;
    const request: ApprovalRequest = {
      id,
      keyId: principal.keyId,
      teamId: principal.teamId ?? '',
      tool,
      upstream: call.upstream,
      argumentsJson: this.contentAllowed(call.upstream, principal.keyId) ? JSON.stringify(call.arguments) : '{}',
      reason: call.decision.because ?? `the execution policy of ${tool} is APPROVE`,
      requestedAtMs: now,
      expiresAtMs: now + timeoutMs,
      parentId: operation.parentId ?? '',
    };
    const audit = this.options.audit;
    const audited: AuditedApproval = {
      approvalId: id,
      operation,
      tool,
      upstream: call.upstream,
      arguments: call.arguments,
      via: 'OPERATOR',
      requestedAt: now,
    };
    void audit?.requested(audited, request.reason, request.expiresAtMs);
    return new Promise<Outcome | undefined>((resolve) => {
      let progress: NodeJS.Timeout | undefined;
      const onAbort = (): void => {
        const reason = 'the agent cancelled the call';
        this.options.link.withdraw({ id, status: 'WITHDRAWN', reason });
        finish(ended(tool, 'APPROVAL_WITHDRAWN', 'the call was cancelled while it waited for approval', id), {
          status: 'withdrawn',
          decidedBy: `agent:${principal.keyId}`,
          reason,
        });
      };
      const timer = setTimeout(() => {
        const reason = `no decision within ${timeoutMs} ms`;
        this.options.link.withdraw({ id, status: 'TIMED_OUT', reason });
        finish(
          ended(
            tool,
            'APPROVAL_TIMED_OUT',
            `it needs a person's approval and none came within ${Math.round(timeoutMs / 1000)} s (approval request ` +
              `${id})`,
            id,
          ),
          { status: 'timed_out', decidedBy: `node:${this.options.nodeId ?? 'this node'}`, reason },
        );
      }, timeoutMs);
      const finish = (outcome: Outcome | undefined, ending: Ending): void => {
        if (!this.waiting.delete(id)) return;
        clearTimeout(timer);
        clearInterval(progress);
        operation.cancellation.offAbort(onAbort);
        const written = audit?.decided(
          audited,
          ending.status,
          ending.decidedBy,
          ending.at ?? Date.now(),
          ending.reason,
        );
        // The decision is on the spool before the call runs or its refusal is answered.
        if (written === undefined) resolve(outcome);
        else void written.then(() => resolve(outcome));
      };
      this.waiting.set(id, { request, finish });
      if (operation.cancellation.aborted) return onAbort();
      operation.cancellation.onAbort(onAbort);
      const meta = operation.params['_meta'];
      const token = isPlainObject(meta) ? meta['progressToken'] : undefined;
      const channel = operation.channel;
      if (channel !== undefined && (typeof token === 'string' || typeof token === 'number')) {
        let ticks = 0;
        const tell = (): void =>
          channel.notify('notifications/progress', {
            progressToken: token,
            progress: ticks++,
            message: `Waiting for a person to approve ${tool} (approval request ${id})`,
          });
        tell();
        progress = setInterval(tell, this.progressIntervalMs);
      }
      this.options.link.request(request);
    });
  }

  /** A decision from the control plane; one for a call no longer waiting here is ignored. */
  decided(decision: ApprovalDecision): void {
    const waiter = this.waiting.get(decision.id);
    if (waiter === undefined) return;
    this.options.logger.info(
      { approval: decision.id, approved: decision.approved, decidedBy: decision.decidedBy },
      'approval decision',
    );
    waiter.finish(
      decision.approved
        ? undefined
        : ended(
            waiter.request.tool,
            'APPROVAL_DENIED',
            `a person denied it${decision.reason ? `: ${decision.reason}` : ''}`,
            decision.id,
          ),
      {
        status: decision.approved ? 'approved' : 'denied',
        decidedBy: decision.decidedBy || 'unknown',
        reason: decision.reason,
        ...(decision.decidedAtMs > 0 ? { at: decision.decidedAtMs } : {}),
      },
    );
  }

  /** What still waits, to send again after a reconnect (the control plane stores each once). */
  pendingRequests(): ApprovalRequest[] {
    return Array.from(this.waiting.values(), (waiter) => waiter.request);
  }

  /** The node is stopping: every waiting call is refused saying so. */
  close(): void {
    for (const [id, waiter] of this.waiting)
      waiter.finish(
        ended(waiter.request.tool, 'NODE_STOPPING', 'the gateway node holding it for approval stopped', id),
        {
          status: 'withdrawn',
          decidedBy: `node:${this.options.nodeId ?? 'this node'}`,
          reason: 'the gateway node holding it stopped',
        },
      );
  }
}
