import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ApprovalDecision, ApprovalRequest, ApprovalWithdrawal } from '../../../proto/gen/portcullis/v1/config.ts';
import type { AuditContent } from '../audit/audit-content.ts';
import { undeclaredCapability } from '../mcp/agent-capabilities.ts';
import { isPlainObject } from '../mcp/json-rpc.ts';
import { CLIENT_CAPABILITIES_META_KEY } from '../mcp/protocol.ts';
import type { Operation, Outcome } from '../pipeline/operation.ts';
import type { Principal } from '../policy/principal.ts';
import { NOT_CHARGED, TOOL_ERROR_META_KEY } from '../pipeline/tool-results.ts';
import type { RpcMessage } from '../upstream/upstream-router.ts';
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

type EndReason =
  | 'APPROVAL_DENIED'
  | 'APPROVAL_DECLINED'
  | 'APPROVAL_TIMED_OUT'
  | 'APPROVAL_WITHDRAWN'
  | 'APPROVAL_UNANSWERED'
  | 'NODE_STOPPING';
/** How much of a held call's arguments the person at the client is shown. */
const MAX_SHOWN_ARGUMENT_CHARS = 2000;

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
  return { kind: 'result', result: refusalResult(tool, reason, text, approvalId) };
}

function refusalResult(tool: string, reason: EndReason, text: string, approvalId: string): Record<string, unknown> {
  const result = {
    content: [{ type: 'text', text: `Tool ${tool} was not run: ${text}` }],
    isError: true,
    _meta: { [TOOL_ERROR_META_KEY]: { reason, approvalId, retryable: reason === 'APPROVAL_TIMED_OUT' } },
  };
  // The upstream never ran it: no price is charged even where this result passes the limits step.
  NOT_CHARGED.add(result);
  return result;
}

/** The capabilities the agent declared: a 2025-era session's, or a 2026-07-28 request's own (in `_meta`). */
function agentCapabilities(operation: Operation): unknown {
  if (operation.agentCapabilities !== undefined) return operation.agentCapabilities;
  const meta = operation.params['_meta'];
  return isPlainObject(meta) ? meta[CLIENT_CAPABILITIES_META_KEY] : undefined;
}

/** The form-mode elicitation that asks the person at the client whether the call may run. */
function approvalElicitation(call: HeldCall, approvalId: string): RpcMessage {
  let shown = JSON.stringify(call.arguments);
  if (shown.length > MAX_SHOWN_ARGUMENT_CHARS) shown = `${shown.slice(0, MAX_SHOWN_ARGUMENT_CHARS)}…`;
  const why = call.decision.because === undefined ? '' : ` (${call.decision.because})`;
  return {
    method: 'elicitation/create',
    params: {
      message:
        `The gateway needs your approval to run the tool ${call.tool}${why} with these arguments: ${shown}. ` +
        'Accept to run it; decline or cancel to refuse it.',
      requestedSchema: { type: 'object', properties: {} },
      _meta: { 'dev.portcullis/approval': { approvalId, tool: call.tool } },
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

  private contentAllowed(upstream: string, principal: Principal): boolean {
    return this.options.content?.allows(upstream, principal.keyId, principal.auditContent) ?? true;
  }

  /** How many calls wait on this node. */
  get size(): number {
    return this.waiting.size;
  }

  /** The approval as audit sees it, its `approval_request` record written (both ways of deciding share it). */
  private auditRequested(
    call: HeldCall,
    approvalId: string,
    via: AuditedApproval['via'],
    requestedAt: number,
    reason: string,
    expiresAtMs: number,
  ): AuditedApproval {
    const { operation, tool, upstream } = call;
    const audited: AuditedApproval = {
      approvalId,
      operation,
      tool,
      upstream,
      arguments: call.arguments,
      via,
      requestedAt,
    };
    void this.options.audit?.requested(audited, reason, expiresAtMs);
    return audited;
  }

  hold(call: HeldCall): Promise<Outcome | undefined> {
    if (call.decision.viaClient === true) {
      const asked = this.askClient(call);
      if (asked !== undefined) return asked;
    }
    return this.holdForOperator(call);
  }

  /**
   * A client approval: the person at the agent's client is asked by elicitation, on the call's
   * stream (2025 era, answered here) or as the first `input_required` round of the call's exchange
   * (2026-07-28: `askFirst`, answered by the era caller before the upstream is called). Accept runs
   * the call; decline and cancel refuse it; no answer within the timeout refuses it. Undefined when
   * the agent cannot be asked (it did not declare form elicitation, or its call cannot wait for
   * input: REST, a script's nested call): an operator decides instead.
   */
  private askClient(call: HeldCall): Promise<Outcome | undefined> | undefined {
    const { operation, tool } = call;
    const channel = operation.channel;
    const onStream = channel?.canRequest === true;
    if (!onStream && operation.callUpstream === undefined) return undefined;
    const capabilities = agentCapabilities(operation);
    const id = randomUUID();
    const request = approvalElicitation(call, id);
    if (!isPlainObject(capabilities) || undeclaredCapability(capabilities, request) !== undefined) return undefined;
    const now = Date.now();
    const timeoutMs = call.decision.approvalTimeoutMs || this.defaultTimeoutMs;
    const principal = operation.principal!;
    const audit = this.options.audit;
    const reason = call.decision.because ?? `the execution policy of ${tool} is APPROVE (by the client)`;
    const audited = this.auditRequested(call, id, 'CLIENT', now, reason, now + timeoutMs);
    const decidedBy = `client:${principal.keyId}`;
    let timedOut = false;
    const settle = async (answer: Promise<Record<string, unknown>>): Promise<Record<string, unknown> | undefined> => {
      let ending: Ending;
      let result: Record<string, unknown> | undefined;
      try {
        const action = (await answer)['action'];
        if (action === 'accept') {
          ending = { status: 'approved', decidedBy, reason: 'accepted at the client' };
        } else {
          const what = action === 'cancel' ? 'cancelled' : 'declined';
          ending = { status: 'denied', decidedBy, reason: `${what} at the client` };
          result = refusalResult(tool, 'APPROVAL_DECLINED', `the person at the client ${what} it`, id);
        }
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (timedOut) {
          ending = { status: 'timed_out', decidedBy: `node:${this.options.nodeId ?? 'this node'}`, reason: message };
          result = refusalResult(
            tool,
            'APPROVAL_TIMED_OUT',
            `it needs the approval of the person at the client and none came within ${Math.round(timeoutMs / 1000)}` +
              ` s (approval request ${id})`,
            id,
          );
        } else if (operation.cancellation.aborted || /Request cancelled/.test(message)) {
          ending = { status: 'withdrawn', decidedBy: `agent:${principal.keyId}`, reason: message };
          result = refusalResult(tool, 'APPROVAL_WITHDRAWN', 'the call was cancelled while it waited for approval', id);
        } else {
          ending = { status: 'denied', decidedBy, reason: `the client could not answer: ${message}` };
          result = refusalResult(
            tool,
            'APPROVAL_UNANSWERED',
            `the client could not answer the approval request: ${message}`,
            id,
          );
        }
      }
      this.options.logger.info({ approval: id, via: 'client', status: ending.status }, 'approval decision');
      const written = audit?.decided(audited, ending.status, ending.decidedBy, Date.now(), ending.reason);
      if (written !== undefined) await written;
      return result;
    };
    const timeout = new AbortController();
    const timer = setTimeout(() => {
      timedOut = true;
      timeout.abort(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const answered = (answer: Promise<Record<string, unknown>>): Promise<Record<string, unknown>> =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        timeout.signal.addEventListener('abort', () => reject(timeout.signal.reason as Error), { once: true });
        answer.then(resolve, reject);
      }).finally(() => clearTimeout(timer));
    if (onStream) {
      const signal = AbortSignal.any([operation.cancellation.signal(), timeout.signal]);
      return settle(answered(channel!.request(request, signal))).then((result) =>
        result === undefined ? undefined : { kind: 'result', result },
      );
    }
    operation.askFirst = { request, settle: (answer) => settle(answered(answer)) };
    return Promise.resolve(undefined);
  }

  private holdForOperator(call: HeldCall): Promise<Outcome | undefined> {
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
      argumentsJson: this.contentAllowed(call.upstream, principal) ? JSON.stringify(call.arguments) : '{}',
      reason: call.decision.because ?? `the execution policy of ${tool} is APPROVE`,
      requestedAtMs: now,
      expiresAtMs: now + timeoutMs,
      parentId: operation.parentId ?? '',
    };
    const audit = this.options.audit;
    const audited = this.auditRequested(call, id, 'OPERATOR', now, request.reason, request.expiresAtMs);
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
