import { hash } from 'node:crypto';
import { isoTime } from './iso-time.ts';

/**
 * One stored audit row as the hash chain sees it: every column that carries meaning, in a fixed
 * order, as read back from PostgreSQL (bigints as decimal strings, times to the millisecond).
 */
export interface ChainedRow {
  readonly id: string;
  readonly time: Date;
  readonly seq: string;
  readonly prevId: string | null;
  readonly nodeId: string;
  readonly kind: string;
  readonly status: string;
  readonly method: string | null;
  readonly keyId: string | null;
  readonly teamId: string | null;
  readonly customerId: string | null;
  readonly subject: string | null;
  readonly upstream: string | null;
  readonly tool: string | null;
  readonly arguments: string | null;
  readonly result: string | null;
  readonly errorCode: number | null;
  readonly errorMessage: string | null;
  readonly latencyUs: number;
  readonly gatewayLatencyUs: number;
  readonly upstreamLatencyUs: number | null;
  readonly costMicros: string | null;
  readonly parentId: string | null;
  readonly traceId: string | null;
  readonly sessionId: string | null;
  readonly clientName: string | null;
  readonly clientVersion: string | null;
  /** Added later: absent or null in the canonical text of rows without it, so older rows hash as they did. */
  readonly modelCostMicros?: string | null;
}

/** The columns of a ChainedRow, as SQL (aliased to the field names), for reading rows back to verify them. */
export const CHAINED_COLUMNS = `id::text AS "id", time AS "time", seq::text AS "seq", prev_id::text AS "prevId",
  node_id AS "nodeId", kind, status, method, key_id AS "keyId", team_id AS "teamId", customer_id AS "customerId",
  subject, upstream, tool, arguments, result, error_code AS "errorCode", error_message AS "errorMessage",
  latency_us AS "latencyUs", gateway_latency_us AS "gatewayLatencyUs", upstream_latency_us AS "upstreamLatencyUs",
  cost_micros::text AS "costMicros", parent_id AS "parentId", trace_id AS "traceId", session_id AS "sessionId",
  client_name AS "clientName", client_version AS "clientVersion", model_cost_micros::text AS "modelCostMicros",
  encode(hash, 'hex') AS "hash"`;

/** The canonical text of a row: a JSON array of its fields in a fixed order. */
export function canonicalRow(row: ChainedRow): string {
  const fields = [
    row.id,
    isoTime(row.time.getTime()),
    row.seq,
    row.prevId,
    row.nodeId,
    row.kind,
    row.status,
    row.method,
    row.keyId,
    row.teamId,
    row.customerId,
    row.subject,
    row.upstream,
    row.tool,
    row.arguments,
    row.result,
    row.errorCode,
    row.errorMessage,
    row.latencyUs,
    row.gatewayLatencyUs,
    row.upstreamLatencyUs,
    row.costMicros,
    row.parentId,
    row.traceId,
    row.sessionId,
    row.clientName,
    row.clientVersion,
  ];
  // Columns added after the chain began are appended only when set, so rows stored before keep their hashes.
  if (row.modelCostMicros !== undefined && row.modelCostMicros !== null) fields.push(row.modelCostMicros);
  return JSON.stringify(fields);
}

/** SHA-256(previous hash ‖ canonical row), hex. The first row's previous hash is empty. */
export function chainHash(previousHashHex: string, row: ChainedRow): string {
  return chainLink(Buffer.from(previousHashHex, 'hex'), canonicalRow(row)).toString('hex');
}

/** Where a link's input is put together (the previous hash, then the canonical text), reused. */
const scratch = Buffer.allocUnsafe(64 * 1024);

/**
 * SHA-256(previous hash ‖ canonical text): the chain's one hash per row, in one call (no Hash object, no
 * hex round trip; `chainHash` is the same over a row).
 */
export function chainLink(previousHash: Uint8Array, canonical: string): Buffer {
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (previousHash.length + canonical.length * 3 > scratch.length)
    return hash('sha256', Buffer.concat([previousHash, Buffer.from(canonical)]), 'buffer');
  scratch.set(previousHash, 0);
  const end = previousHash.length + scratch.write(canonical, previousHash.length);
  return hash('sha256', scratch.subarray(0, end), 'buffer');
}
