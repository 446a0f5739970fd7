/**
 * The fields of an audit record that pass from the node's record (data-plane/src/audit/audit-record.ts) to the
 * GraphQL view of it (control-plane/src/services/audit-queries.ts) as they are: one list, so the two cannot drift.
 */
export interface AuditCallFields {
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
  /**
   * JSON text, or a truncation marker object as JSON text (see `AuditContent.clip`); null when content logging is
   * off. Always valid JSON: a row carries it as the value itself.
   */
  arguments: string | null;
  result: string | null;
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
 * A record's fields in the order of an audit row: a spool line that is a JSON array of the record's values
 * (`["<id>",<time>,"<node>",…]`) rather than an object, about half the bytes to write, ship and parse. Nodes
 * write rows; control planes that take them say so (`Snapshot.takes_audit_rows`), and for the others a node
 * turns its rows back into objects before shipping them. Append new fields at the end only: a row shorter
 * than this list (from an older node) has null for the fields it lacks.
 *
 * In a row, `arguments` and `result` are the JSON values themselves, not strings of their JSON text as in an
 * object line: the node writes the text it holds as it is, where escaping it as a string cost more than the rest
 * of the row (and a backslash for each of its quotes, to write, ship and parse). A JSON `null` there reads as no
 * value.
 */
export const AUDIT_ROW_FIELDS = [
  'id',
  'time',
  'node',
  'kind',
  'status',
  'method',
  'keyId',
  'teamId',
  'customerId',
  'subject',
  'upstream',
  'tool',
  'arguments',
  'result',
  'error',
  'latencyUs',
  'gatewayLatencyUs',
  'upstreamLatencyUs',
  'costMicros',
  'parentId',
  'modelCostMicros',
  'traceId',
  'sessionId',
  'clientName',
  'clientVersion',
] as const;

const ARGUMENTS = AUDIT_ROW_FIELDS.indexOf('arguments');
const RESULT = AUDIT_ROW_FIELDS.indexOf('result');

/**
 * The record a row holds, as an object with the fields of AUDIT_ROW_FIELDS (null for those the row lacks), its
 * arguments and result as JSON text again. Throws a RangeError for a value nested too deeply to serialize.
 */
export function rowRecord(row: readonly unknown[]): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (let i = 0; i < AUDIT_ROW_FIELDS.length; i++) {
    const value = i < row.length ? row[i] : null;
    record[AUDIT_ROW_FIELDS[i]!] = (i === ARGUMENTS || i === RESULT) && value !== null ? JSON.stringify(value) : value;
  }
  return record;
}
