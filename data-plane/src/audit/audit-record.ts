import { randomFillSync } from 'node:crypto';
import { rowRecord, type AuditCallFields } from '../../../common/src/audit-fields.ts';

/**
 * One audit record, as a node spools it and ships it to the control plane (one JSON row per line: `auditRow`).
 * This is the record API every capability emits through: build one with `newAuditRecord` and hand
 * it to `AuditRecorder.record` (the pipeline's record step does so for every operation; the HTTP
 * edge for refusals that never reach the pipeline).
 */
export interface AuditRecord extends AuditCallFields {
  /** UUIDv7: sorts by time; inserts are idempotent by it. */
  readonly id: string;
  /** ms since the epoch (the id's own timestamp). */
  readonly time: number;
  readonly node: string;
  kind: AuditKind;
  status: AuditStatus;
  error: AuditError | null;
  /** Whole time as the agent saw it, µs. */
  latencyUs: number;
  /** The gateway's own share (latency minus upstream time), µs. */
  gatewayLatencyUs: number;
  /** Time spent waiting for the upstream, µs; null when no upstream was called. */
  upstreamLatencyUs: number | null;
}

/**
 * discovery: a list call; tool_call: tools/call (any entry); request: other MCP methods; refusal: refused before it
 * ran; approval_request / approval_decision: a call held for a person's approval, and the decision on it
 * (approvals/approval-audit.ts).
 */
export type AuditKind = 'discovery' | 'tool_call' | 'request' | 'refusal' | 'approval_request' | 'approval_decision';
/**
 * ok; tool_error: an isError result; error: a JSON-RPC error after the call ran; unavailable: the upstream could not
 * answer; refused. Approval records: pending (a request), then approved, denied, timed_out or withdrawn.
 */
export type AuditStatus = 'ok' | 'tool_error' | 'error' | 'unavailable' | 'refused' | ApprovalAuditStatus;
export type ApprovalAuditStatus = 'pending' | 'approved' | 'denied' | 'timed_out' | 'withdrawn';

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
  return { id: uuidV7(time), time };
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** Random bytes drawn 4 KiB at a time rather than one call into the CSPRNG per millisecond. */
const pool = Buffer.allocUnsafe(4096);
let poolAt = pool.length;

/** The millisecond of the last id, the first 28 characters its ids share, and the counter in their last 32 bits. */
let idMs = -1;
let idPrefix = '';
let idCounter = 0;

/**
 * A UUIDv7 (RFC 9562) for `ms`: 48 bits of time, version 7, then random bits, variant 10; lower-case.
 * Monotonic within a millisecond (RFC 9562 §6.2, method 2): the first id of a millisecond takes 74
 * random bits; each later one adds 1 to the last 32 of them, which start below 2^31 so never
 * overflow. Only those 8 hex digits are made per id: the rest is kept for the millisecond (a new
 * string of 16 pieces and 10 random bytes per id cost nearly three times as much).
 */
export function uuidV7(ms: number): string {
  if (ms !== idMs || idCounter > 0xffffffff) {
    if (poolAt + 10 > pool.length) {
      randomFillSync(pool);
      poolAt = 0;
    }
    const r = poolAt;
    poolAt += 10;
    const high = Math.floor(ms / 0x1000000); // the top 24 of 48 bits
    idMs = ms;
    idPrefix =
      HEX[(high >>> 16) & 0xff]! +
      HEX[(high >>> 8) & 0xff]! +
      HEX[high & 0xff]! +
      HEX[(ms >>> 16) & 0xff]! +
      '-' +
      HEX[(ms >>> 8) & 0xff]! +
      HEX[ms & 0xff]! +
      '-' +
      HEX[0x70 | (pool[r]! & 0x0f)]! +
      HEX[pool[r + 1]!]! +
      '-' +
      HEX[0x80 | (pool[r + 2]! & 0x3f)]! +
      HEX[pool[r + 3]!]! +
      '-' +
      HEX[pool[r + 4]!]! +
      HEX[pool[r + 5]!]!;
    // Flattened once here, not in every id made from it (a rope of 15 pieces otherwise): reading a character
    // flattens a rope in place, where a round trip through a Buffer cost more than the rest of the id.
    idPrefix.charCodeAt(0);
    idCounter = pool.readUInt32BE(r + 6) >>> 1;
  }
  const counter = idCounter++;
  return (
    idPrefix +
    HEX[counter >>> 24]! +
    HEX[(counter >>> 16) & 0xff]! +
    HEX[(counter >>> 8) & 0xff]! +
    HEX[counter & 0xff]!
  );
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

const str = (value: string | null): string => (value === null ? 'null' : JSON.stringify(value));
/**
 * JSON text as a value of the row, as it is. A line break in JSON text can only be whitespace between tokens
 * (one in a string is escaped): as a space it keeps the value and the spool's one line per record.
 */
const raw = (json: string | null): string =>
  json === null ? 'null' : json.includes('\n') ? json.replaceAll('\n', ' ') : json;
const num = (value: number | null): string => (value !== null && Number.isFinite(value) ? String(value) : 'null');

/**
 * A run of a row's fields and its text, kept while record after record holds the same values: the node, key,
 * team, upstream, tool, session and client of one record are mostly those of the record before (each field's
 * `JSON.stringify` was a quarter of the line's cost, and the run's concatenation much of the rest).
 */
class RowPiece {
  /** Bumped by a field of the piece whose value changed. */
  changes = 0;
  private builtAt = -1;
  private text = '';

  /** The piece's text, unless a field changed since it was built. */
  get kept(): string | undefined {
    return this.builtAt === this.changes ? this.text : undefined;
  }

  keep(text: string): string {
    // Flattened once here, not in every row that holds it (see uuidV7).
    text.charCodeAt(0);
    this.text = text;
    this.builtAt = this.changes;
    return text;
  }
}

/** The JSON of a field's last value, in a piece of the row. */
class LastJson {
  private value: string | null = null;
  private json = 'null';

  constructor(private readonly piece: RowPiece) {}

  of(value: string | null): string {
    if (value !== this.value) {
      this.value = value;
      this.json = str(value);
      this.piece.changes++;
    }
    return this.json;
  }
}

/** The row from `node` to `tool`: a key's calls to one tool repeat it all. */
const middle = new RowPiece();
const inMiddle = {
  node: new LastJson(middle),
  kind: new LastJson(middle),
  status: new LastJson(middle),
  method: new LastJson(middle),
  keyId: new LastJson(middle),
  teamId: new LastJson(middle),
  customerId: new LastJson(middle),
  subject: new LastJson(middle),
  upstream: new LastJson(middle),
  tool: new LastJson(middle),
};

function middleOf(r: AuditRecord): string {
  const f = inMiddle;
  const node = f.node.of(r.node);
  const kind = f.kind.of(r.kind);
  const status = f.status.of(r.status);
  const method = f.method.of(r.method);
  const keyId = f.keyId.of(r.keyId);
  const teamId = f.teamId.of(r.teamId);
  const customerId = f.customerId.of(r.customerId);
  const subject = f.subject.of(r.subject);
  const upstream = f.upstream.of(r.upstream);
  const tool = f.tool.of(r.tool);
  return (
    middle.kept ??
    middle.keep(`,${node},${kind},${status},${method},${keyId},${teamId},${customerId},${subject},${upstream},${tool},`)
  );
}

/** The row from `sessionId` to its end. */
const tail = new RowPiece();
const inTail = { sessionId: new LastJson(tail), clientName: new LastJson(tail), clientVersion: new LastJson(tail) };

function tailOf(r: AuditRecord): string {
  const sessionId = inTail.sessionId.of(r.sessionId);
  const clientName = inTail.clientName.of(r.clientName);
  const clientVersion = inTail.clientVersion.of(r.clientVersion);
  return tail.kept ?? tail.keep(`,${sessionId},${clientName},${clientVersion}]`);
}

/**
 * The record as its spool line, an audit row: the JSON text `JSON.stringify` gives for the array of its
 * values in AUDIT_ROW_FIELDS order, built without walking the object (a quarter cheaper on the hot path).
 * Without the keys a line is about half as long to build, write, ship and parse. The id needs no escaping
 * (a UUID), nor do the arguments and result, JSON text written as the values they are (see AUDIT_ROW_FIELDS);
 * every other string goes through `JSON.stringify`, the fields that repeat once per value (`RowPiece`). A
 * field added to `AuditRecord` is added to AUDIT_ROW_FIELDS and here, at the end (test/unit/audit-line.test.ts
 * compares the two).
 */
export function auditRow(r: AuditRecord): string {
  const error = r.error === null ? 'null' : `{"code":${num(r.error.code)},"message":${str(r.error.message)}}`;
  return (
    `["${r.id}",${num(r.time)}${middleOf(r)}${raw(r.arguments)},${raw(r.result)},${error},${num(r.latencyUs)},` +
    `${num(r.gatewayLatencyUs)},${num(r.upstreamLatencyUs)},${num(r.costMicros)},${str(r.parentId)},` +
    `${num(r.modelCostMicros)},${str(r.traceId)}${tailOf(r)}`
  );
}

/** A spool line (a row, or an object from a node before rows) as the record it holds. */
export function recordOfLine(line: string): AuditRecord {
  const value: unknown = JSON.parse(line);
  return (Array.isArray(value) ? rowRecord(value) : value) as AuditRecord;
}

/**
 * A spool line as a control plane before rows takes it: a row as the JSON object of its record, else as is
 * (a line that is not JSON too: the control plane refuses it, counts it and says why).
 */
export function objectLine(line: string): string {
  if (!line.startsWith('[')) return line;
  try {
    return JSON.stringify(rowRecord(JSON.parse(line) as unknown[]));
  } catch {
    return line;
  }
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
