import type { AuditRecorder } from '../../audit/audit-recorder.ts';
import {
  newAuditStamp,
  parentIdOf,
  sessionRef,
  traceIdOf,
  type AuditRecord,
  type AuditStamp,
} from '../../audit/audit-record.ts';
import { isPlainObject } from '../../mcp/json-rpc.ts';
import { CLIENT_INFO_META_KEY, RpcErrorCode } from '../../mcp/protocol.ts';
import type { CallOutcome, DataPlaneMetrics } from '../../observability/metrics.ts';
import type { TraceSpan, Tracing } from '../../../../common/src/tracing.ts';
import { GatewayError, RESULT_TOO_DEEP } from '../gateway-error.ts';
import { refused, type Operation, type Outcome, type Step } from '../operation.ts';

/** `_meta` keys an agent may use instead of the headers: the parent request id, and W3C trace context. */
export const PARENT_REQUEST_META_KEY = 'io.portcullis/parent-request';
export const TRACEPARENT_META_KEY = 'traceparent';
/** `_meta` key of the model cost an application reports for its run (with a parent id), in micro-units. */
export const MODEL_COST_META_KEY = 'dev.portcullis/modelCostMicros';

const AUDIT_FULL = new GatewayError(
  RpcErrorCode.AuditUnavailable,
  'Service Unavailable: this gateway node cannot record calls right now (its audit spool is full while the control ' +
    'plane is unreachable), so it refuses them; retry later or on another node',
);

/**
 * What happened, once it is known: wraps every later step, so it sees each outcome, refusals
 * included. It measures tool calls routed to an upstream (duration, the gateway's own share,
 * outcome) and writes one audit record per operation to the node's spool before the outcome goes
 * back to the adapter (so before the answer is sent). A call still waiting for a 2026-07-28
 * agent's input is recorded when it completes, on the retry that completes it; `ping` is not recorded.
 * While the spool is full and the node is set to refuse, operations are refused here before they run.
 * With traces on, each operation (but `ping`) gets a span here, continuing the caller's `traceparent`
 * (header or `_meta`), and its audit record carries that span's trace id.
 */
export function recordStep(metrics: DataPlaneMetrics | undefined, audit?: AuditRecorder, tracing?: Tracing): Step {
  if (metrics === undefined && audit === undefined && tracing === undefined)
    return { name: 'record', run: (operation, next) => next(operation) };
  return {
    name: 'record',
    async run(operation, next) {
      if (audit !== undefined && !audit.admits()) return refused(AUDIT_FULL);
      // Taken now: the record's time is when the operation began, and a script's nested calls name this id as parent.
      const stamp =
        audit !== undefined && operation.method !== 'ping'
          ? operation.continuesAuditId === undefined
            ? newAuditStamp()
            : stampOf(operation.continuesAuditId)
          : undefined;
      if (stamp !== undefined) operation.auditId = stamp.id;
      const span =
        tracing === undefined || operation.method === 'ping'
          ? undefined
          : (operation.span = startSpan(tracing, operation));
      const outcome = await next(operation);
      if (span !== undefined) endSpan(span, operation, outcome);
      if (outcome.kind === 'input') return outcome;
      const now = performance.now();
      const started = operation.upstreamStartedAt;
      const upstreamMs = started === undefined ? undefined : (operation.upstreamEndedAt ?? now) - started;
      const target = operation.target;
      if (metrics !== undefined && outcome.kind === 'error' && started === undefined && operation.method !== 'ping')
        metrics.refusal(outcome.error.code);
      if (metrics !== undefined && operation.costMicros !== undefined && target?.kind === 'upstream') {
        const tool = target.params['name'];
        metrics.cost(target.upstream, typeof tool === 'string' ? tool : target.subject, operation.costMicros);
      }
      if (metrics !== undefined && operation.method === 'tools/call' && target?.kind === 'upstream') {
        metrics.toolCall(
          target.upstream,
          callOutcome(operation, outcome),
          (now - operation.receivedAt) / 1000,
          (upstreamMs ?? 0) / 1000,
        );
      }
      if (audit !== undefined && stamp !== undefined) {
        const record = auditRecord(audit, stamp, operation, outcome, now - operation.receivedAt, upstreamMs);
        // A result the adapter could not serialize either: recorded as the error the agent gets instead.
        if (record.result !== null && outcome.kind === 'result' && audit.content.isTooDeep(record.result)) {
          record.status = 'error';
          record.result = null;
          record.error = { code: RESULT_TOO_DEEP.code, message: RESULT_TOO_DEEP.message };
          await audit.record(record);
          return refused(RESULT_TOO_DEEP);
        }
        const written = audit.record(record);
        if (written !== undefined) await written;
        // The result serialized once: the adapter sends the text the record holds.
        const json = record.result;
        if (outcome.kind === 'result' && json !== null && outcome.json === undefined && audit.content.isWhole(json))
          return outcome.unavailable === undefined
            ? { kind: 'result', result: outcome.result, json }
            : { kind: 'result', result: outcome.result, unavailable: outcome.unavailable, json };
      }
      return outcome;
    },
  };
}

/** The stamp of an id taken earlier (a UUIDv7's first 48 bits are its time in ms). */
function stampOf(id: string): AuditStamp {
  return { id, time: Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16) };
}

/** The span of one operation, under the caller's trace context (the edge's header, else `_meta.traceparent`). */
function startSpan(tracing: Tracing, operation: Operation): TraceSpan {
  const meta = operation.params['_meta'];
  const fromMeta = isPlainObject(meta) ? meta[TRACEPARENT_META_KEY] : undefined;
  const traceparent = operation.origin?.traceparent ?? (typeof fromMeta === 'string' ? fromMeta : undefined);
  return tracing.request(operation.method, traceparent, {
    'mcp.method.name': operation.method,
    'jsonrpc.request.id':
      typeof operation.id === 'string' || typeof operation.id === 'number' ? operation.id : undefined,
    'portcullis.parent_id': operation.parentId,
  });
}

/** Labels the span with what authorize resolved (bounded names only) and its outcome, and ends it. */
function endSpan(span: TraceSpan, operation: Operation, outcome: Outcome): void {
  const target = operation.target;
  const principal = operation.principal;
  const attributes = {
    'portcullis.key_id': principal?.keyId,
    'portcullis.team_id': principal?.teamId ?? undefined,
    'portcullis.upstream': target?.kind === 'upstream' ? target.upstream : undefined,
    'gen_ai.tool.name': target?.kind === 'upstream' && operation.method === 'tools/call' ? target.subject : undefined,
    'portcullis.outcome': outcome.kind === 'input' ? 'input_required' : callOutcome(operation, outcome),
  };
  if (outcome.kind === 'error')
    span.fail(outcome.error.message, { ...attributes, 'rpc.jsonrpc.error_code': outcome.error.code });
  else if (outcome.kind === 'result' && (outcome.unavailable === true || outcome.result['isError'] === true))
    span.fail('tool error', attributes);
  else span.annotate(attributes);
  span.end();
}

function callOutcome(operation: Operation, outcome: Outcome): CallOutcome {
  if (outcome.kind === 'error') {
    if (operation.upstreamStartedAt === undefined) return 'refused';
    return outcome.error.code === RpcErrorCode.UpstreamUnavailable ? 'unavailable' : 'rpc_error';
  }
  if (outcome.kind !== 'result') return 'ok';
  if (outcome.unavailable === true) return 'unavailable';
  return outcome.result['isError'] === true ? 'tool_error' : 'ok';
}

/** One operation's record: built once its outcome is known, from what the operation already holds. */
function auditRecord(
  audit: AuditRecorder,
  stamp: AuditStamp,
  operation: Operation,
  outcome: Outcome,
  totalMs: number,
  upstreamMs: number | undefined,
): AuditRecord {
  const method = operation.method;
  const ranUpstream = operation.upstreamStartedAt !== undefined;
  const refusal = outcome.kind === 'error' && !ranUpstream;
  const kind =
    refusal && operation.target?.kind !== 'catalog'
      ? 'refusal'
      : method === 'tools/call'
        ? 'tool_call'
        : method.endsWith('/list') || method === 'server/discover'
          ? 'discovery'
          : 'request';
  const record = audit.start(kind, refusal ? 'refused' : statusOf(outcome), stamp);
  const params = operation.params;
  const meta = isPlainObject(params['_meta']) ? params['_meta'] : undefined;
  const principal = operation.principal;
  const upstream = operation.target?.kind === 'upstream' ? operation.target.upstream : null;
  record.method = method;
  record.keyId = principal?.keyId ?? operation.keyId ?? null;
  record.teamId = principal?.teamId ?? null;
  record.customerId = principal?.customerId ?? null;
  record.subject = principal?.identity?.subject ?? null;
  record.upstream = upstream;
  record.tool = subjectOf(method, params);
  if (audit.content.allows(upstream, record.keyId, principal?.auditContent)) {
    if (method === 'tools/call' || method === 'prompts/get') record.arguments = audit.content.clip(params['arguments']);
    if (outcome.kind === 'result')
      record.result =
        outcome.json === undefined ? audit.content.clip(outcome.result) : audit.content.clipJson(outcome.json);
    else if (outcome.kind === 'json') record.result = audit.content.clipJson(outcome.json);
  }
  if (outcome.kind === 'error') record.error = { code: outcome.error.code, message: outcome.error.message };
  record.latencyUs = Math.round(totalMs * 1000);
  record.upstreamLatencyUs = upstreamMs === undefined ? null : Math.round(upstreamMs * 1000);
  record.gatewayLatencyUs = Math.max(0, record.latencyUs - (record.upstreamLatencyUs ?? 0));
  record.costMicros = operation.costMicros ?? null;
  const origin = operation.origin;
  record.parentId =
    operation.parentId ?? parentIdOf(origin?.parentId) ?? parentIdOf(meta?.[PARENT_REQUEST_META_KEY]) ?? null;
  if (record.parentId !== null) {
    record.modelCostMicros = modelCostOf(origin?.modelCostMicros) ?? modelCostOf(meta?.[MODEL_COST_META_KEY]);
  }
  record.traceId = operation.span?.traceId ?? traceIdOf(origin?.traceparent) ?? traceIdOf(meta?.[TRACEPARENT_META_KEY]);
  record.sessionId = sessionRef(operation.sessionId);
  const client = meta?.[CLIENT_INFO_META_KEY] ?? origin?.clientInfo;
  if (isPlainObject(client)) {
    record.clientName = typeof client['name'] === 'string' ? client['name'].slice(0, 200) : null;
    record.clientVersion = typeof client['version'] === 'string' ? client['version'].slice(0, 100) : null;
  }
  return record;
}

function statusOf(outcome: Outcome): AuditRecord['status'] {
  if (outcome.kind === 'error')
    return outcome.error.code === RpcErrorCode.UpstreamUnavailable ? 'unavailable' : 'error';
  if (outcome.kind !== 'result') return 'ok';
  if (outcome.unavailable === true) return 'unavailable';
  return outcome.result['isError'] === true ? 'tool_error' : 'ok';
}

/** A model cost as reported (a whole number of micro-units, as a number or decimal digits), else null. */
export function modelCostOf(value: unknown): number | null {
  if (typeof value === 'string') return /^\d{1,15}$/.test(value.trim()) ? Number(value.trim()) : null;
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : null;
}

/** The tool, prompt or resource the operation is about, as the agent named it. */
function subjectOf(method: string, params: Record<string, unknown>): string | null {
  const subject = method === 'resources/read' || method.startsWith('resources/') ? params['uri'] : params['name'];
  return typeof subject === 'string' ? subject.slice(0, 500) : null;
}
