import { v7 as uuidv7 } from 'uuid';

/**
 * One audit record, as a node spools it and ships it to the control plane (one JSON line each).
 * This is the record API every capability emits through: build one with `newAuditRecord` and hand
 * it to `AuditRecorder.record` (the pipeline's record step does so for every operation; the HTTP
 * edge for refusals that never reach the pipeline).
 */
export interface AuditRecord {
  /** UUIDv7: sorts by time; inserts are idempotent by it. */
  readonly id: string;
  /** ms since the epoch (the id's own timestamp). */
  readonly time: number;
  readonly node: string;
  kind: AuditKind;
  status: AuditStatus;
  /** The JSON-RPC method (`tools/call`, `tools/list`, …) or, for an edge refusal, what was known of it. */
  method: string | null;
  keyId: string | null;
  teamId: string | null;
  /** Filled when governance (customers) lands. */
  customerId: string | null;
  /** The OIDC subject, when a JWT stood in for a key. */
  subject: string | null;
  upstream: string | null;
  /** The tool (or prompt, resource) name as the agent sent it. */
  tool: string | null;
  /** JSON text, or a truncation marker object as JSON text (see `clipContent`); null when content logging is off. */
  arguments: string | null;
  result: string | null;
  error: AuditError | null;
  /** Whole time as the agent saw it, µs. */
  latencyUs: number;
  /** The gateway's own share (latency minus upstream time), µs. */
  gatewayLatencyUs: number;
  /** Time spent waiting for the upstream, µs; null when no upstream was called. */
  upstreamLatencyUs: number | null;
  /** Cost in micro-units of currency; null until governance (budgets) prices calls. */
  costMicros: number | null;
  /** The originating request (header `x-portcullis-parent-request`, `_meta`, or a script's call). */
  parentId: string | null;
  /**
   * The model cost of the agent run, reported by the application on a request with a parent id
   * (`x-portcullis-model-cost-micros` or `_meta["dev.portcullis/modelCostMicros"]`), micro-units.
   */
  modelCostMicros: number | null;
  /** W3C trace id (32 hex) from an incoming `traceparent`. */
  traceId: string | null;
  /** 2025-era MCP session (the signature part of the signed session id; never the whole token). */
  sessionId: string | null;
  clientName: string | null;
  clientVersion: string | null;
}

/**
 * discovery: a list call; tool_call: tools/call (any entry); request: other MCP methods; refusal: refused before it
 * ran.
 */
export type AuditKind = 'discovery' | 'tool_call' | 'request' | 'refusal';
/**
 * ok; tool_error: an isError result; error: a JSON-RPC error after the call ran; unavailable: the upstream could not
 * answer; refused.
 */
export type AuditStatus = 'ok' | 'tool_error' | 'error' | 'unavailable' | 'refused';

export interface AuditError {
  readonly code: number;
  readonly message: string;
}

/** A fresh record with every field empty but the id, time and node. */
/** A record's id and time, taken together (the id's UUIDv7 timestamp is the time; the control plane checks it). */
export interface AuditStamp {
  readonly id: string;
  readonly time: number;
}

/** An id and time for a record to be written later: taken when an operation starts, so its nested calls can name it. */
export function newAuditStamp(): AuditStamp {
  const time = Date.now();
  return { id: uuidv7({ msecs: time }), time };
}

export function newAuditRecord(
  node: string,
  kind: AuditKind,
  status: AuditStatus,
  stamp: AuditStamp = newAuditStamp(),
): AuditRecord {
  return {
    id: stamp.id,
    time: stamp.time,
    node,
    kind,
    status,
    method: null,
    keyId: null,
    teamId: null,
    customerId: null,
    subject: null,
    upstream: null,
    tool: null,
    arguments: null,
    result: null,
    error: null,
    latencyUs: 0,
    gatewayLatencyUs: 0,
    upstreamLatencyUs: null,
    costMicros: null,
    parentId: null,
    modelCostMicros: null,
    traceId: null,
    sessionId: null,
    clientName: null,
    clientVersion: null,
  };
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/;
const ZERO_TRACE = '00000000000000000000000000000000';

/** The trace id of a W3C `traceparent` value (only the trace id is read), or null when absent or malformed. */
export function traceIdOf(traceparent: unknown): string | null {
  if (typeof traceparent !== 'string') return null;
  const match = TRACEPARENT.exec(traceparent.trim().toLowerCase());
  const id = match?.[1];
  return id === undefined || id === ZERO_TRACE ? null : id;
}

/** A parent request id as given by an agent: a short printable string, else ignored. */
export function parentIdOf(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const trimmed = value.trim();
  return trimmed.length > 0 && trimmed.length <= 200 && /^[\x21-\x7e]+$/.test(trimmed) ? trimmed : null;
}

/** The signature part of a signed 2025-era session id: identifies the session without carrying its claims. */
export function sessionRef(token: string | undefined): string | null {
  if (token === undefined) return null;
  const dot = token.lastIndexOf('.');
  return dot === -1 ? token.slice(0, 64) : token.slice(dot + 1, dot + 65);
}
