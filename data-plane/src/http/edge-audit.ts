import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuditRecorder } from '../audit/audit-recorder.ts';
import { parentIdOf, traceIdOf } from '../audit/audit-record.ts';
import type { RequestOrigin } from '../pipeline/operation.ts';
import { RpcErrorCode } from '../mcp/protocol.ts';
import type { Authenticated } from './authenticate.ts';

/** An HTTP-level refusal sent on a response (sendRpcError marks it), for the edge's audit record. */
interface EdgeRefusal {
  readonly status: number;
  readonly code: number;
  readonly message: string;
}

const REFUSAL = Symbol('portcullis.edgeRefusal');
type Marked = ServerResponse & { [REFUSAL]?: EdgeRefusal };

/** Notes that `res` was answered with an HTTP-level JSON-RPC error (authentication, bad input, session). */
export function markRefusal(res: ServerResponse, status: number, code: number, message: string): void {
  (res as Marked)[REFUSAL] = { status, code, message };
}

/** The JSON-RPC code of the HTTP-level refusal sent on `res` (4xx/5xx), if it was refused at the edge. */
export function edgeRefusalCode(res: ServerResponse): number | undefined {
  const refusal = (res as Marked)[REFUSAL];
  return refusal === undefined || refusal.status < 400 ? undefined : refusal.code;
}

/**
 * The audit headers of a request: `x-portcullis-parent-request`, `traceparent` and
 * `x-portcullis-model-cost-micros` (undefined when none is sent).
 */
export function requestOrigin(req: IncomingMessage, clientInfo?: unknown): RequestOrigin | undefined {
  const parentId = header(req, 'x-portcullis-parent-request');
  const traceparent = header(req, 'traceparent');
  const modelCostMicros = header(req, 'x-portcullis-model-cost-micros');
  if (parentId === undefined && traceparent === undefined && clientInfo === undefined && modelCostMicros === undefined)
    return undefined;
  return modelCostMicros === undefined
    ? { parentId, traceparent, clientInfo }
    : { parentId, traceparent, clientInfo, modelCostMicros };
}

/**
 * One `refusal` record for a request the edge refused before the pipeline saw it (no or a wrong key,
 * unparseable or invalid input, an unknown session, a disallowed host): written after the answer,
 * since nothing ran. `auth` is the caller when authentication had passed.
 */
export function recordEdgeRefusal(
  audit: AuditRecorder | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  auth: Authenticated | undefined,
  receivedAt: number,
): void {
  const refusal = (res as Marked)[REFUSAL];
  if (audit === undefined || refusal === undefined || refusal.status < 400) return;
  if (auth === undefined && !samplerOf(audit).admit()) return;
  const record = audit.start('refusal', 'refused');
  record.method = `${req.method ?? 'GET'} ${(req.url ?? '/').split('?')[0]}`;
  record.keyId = auth?.principal.keyId ?? null;
  record.teamId = auth?.principal.teamId ?? null;
  record.customerId = auth?.principal.customerId ?? null;
  record.subject = auth?.principal.identity?.subject ?? null;
  record.error = { code: refusal.code, message: refusal.message };
  record.latencyUs = Math.round((performance.now() - receivedAt) * 1000);
  record.gatewayLatencyUs = record.latencyUs;
  record.parentId = parentIdOf(header(req, 'x-portcullis-parent-request'));
  record.traceId = traceIdOf(header(req, 'traceparent'));
  void audit.record(record);
}

/**
 * Records of requests refused before authentication, at most this many a second a node: anyone can
 * send those, and one record each would let a flood without a key fill the spool (and, with
 * `--audit-when-full refuse`, stop every caller's calls). The rest are counted into one record a second.
 */
export const UNAUTHENTICATED_RECORDS_PER_SECOND = 50;

/** One node's budget of records for unauthenticated refusals: a fixed one-second window. */
class UnauthenticatedSampler {
  private windowStartMs = 0;
  private taken = 0;
  private suppressed = 0;

  constructor(private readonly audit: AuditRecorder) {}

  /** Whether this refusal gets its own record; when not, it is counted into the window's summary. */
  admit(now = Date.now()): boolean {
    if (now - this.windowStartMs >= 1000) {
      this.windowStartMs = now;
      this.taken = 0;
    }
    if (this.taken < UNAUTHENTICATED_RECORDS_PER_SECOND) {
      this.taken++;
      return true;
    }
    if (this.suppressed++ === 0) setTimeout(() => this.summarize(), 1000 - (now - this.windowStartMs)).unref();
    return false;
  }

  private summarize(): void {
    const count = this.suppressed;
    this.suppressed = 0;
    const record = this.audit.start('refusal', 'refused');
    record.method = 'unauthenticated';
    record.error = {
      code: RpcErrorCode.Unauthenticated,
      message:
        `${count} more requests refused before authentication were counted here, not recorded one by one ` +
        `(over ${UNAUTHENTICATED_RECORDS_PER_SECOND} a second)`,
    };
    void this.audit.record(record);
  }
}

const samplers = new WeakMap<AuditRecorder, UnauthenticatedSampler>();

function samplerOf(audit: AuditRecorder): UnauthenticatedSampler {
  let sampler = samplers.get(audit);
  if (sampler === undefined) {
    sampler = new UnauthenticatedSampler(audit);
    samplers.set(audit, sampler);
  }
  return sampler;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
