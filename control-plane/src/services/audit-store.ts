import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { z } from 'zod';
import { rowRecord } from '../../../common/src/audit-fields.ts';
import { isTooDeep, type Logger } from '../../../common/src/index.ts';
import { canonicalRow, chainLink, type ChainedRow } from './audit-chain.ts';
import type { AuditFeed } from './audit-feed.ts';
import { isoTime } from './iso-time.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const text = (max: number) => z.string().max(max).nullable();
const micros = z.number().int().min(0).max(2_147_483_647);

/** An audit record as a node ships it (data-plane/src/audit/audit-record.ts), validated at the boundary. */
export const auditRecordSchema = z
  .object({
    id: z.string().regex(UUID, 'must be a lower-case UUIDv7'),
    time: z.number().int().positive(),
    node: z.string().min(1).max(200),
    kind: z.enum(['discovery', 'tool_call', 'request', 'refusal', 'approval_request', 'approval_decision']),
    status: z.enum([
      'ok',
      'tool_error',
      'error',
      'unavailable',
      'refused',
      // Approval records (data-plane/src/approvals): a request waits; a decision approved, denied, timed out or
      // withdrawn.
      'pending',
      'approved',
      'denied',
      'timed_out',
      'withdrawn',
    ]),
    method: text(300),
    keyId: text(200),
    teamId: text(200),
    customerId: text(200),
    subject: text(500),
    upstream: text(200),
    tool: text(500),
    arguments: text(4 * 1024 * 1024),
    result: text(4 * 1024 * 1024),
    error: z.object({ code: z.number().int(), message: z.string().max(8192) }).nullable(),
    latencyUs: micros,
    gatewayLatencyUs: micros,
    upstreamLatencyUs: micros.nullable(),
    costMicros: z.number().int().min(0).nullable(),
    parentId: text(200),
    // Optional: nodes older than this field send none.
    modelCostMicros: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().default(null),
    traceId: z
      .string()
      .regex(/^[0-9a-f]{32}$/)
      .nullable(),
    sessionId: text(200),
    clientName: text(200),
    clientVersion: text(100),
  })
  .refine((r) => Number.parseInt(r.id.slice(0, 8) + r.id.slice(9, 13), 16) === r.time, {
    message: 'time must be the timestamp of the UUIDv7 id',
    path: ['time'],
  });
/** A record to store (`modelCostMicros` may be left out: records without it store NULL). */
export type AuditRecordInput = Omit<z.output<typeof auditRecordSchema>, 'modelCostMicros'> & {
  modelCostMicros?: number | null;
};

const KINDS: ReadonlySet<unknown> = new Set(auditRecordSchema.shape.kind.options);
const STATUSES: ReadonlySet<unknown> = new Set(auditRecordSchema.shape.status.options);
const TRACE_ID = /^[0-9a-f]{32}$/;
const MAX_MICROS = 2_147_483_647;

/** A text field: null, or a string of at most `max` UTF-16 units without NUL (PostgreSQL text cannot hold it). */
function badText(value: unknown, max: number, nullable = true): string | undefined {
  if (value === null && nullable) return undefined;
  if (typeof value !== 'string') return nullable ? 'must be a string or null' : 'must be a string';
  if (value.length > max) return `must be at most ${max} characters (it has ${value.length})`;
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  return undefined;
}

function badInt(value: unknown, min: number, max: number, nullable: boolean): string | undefined {
  if (value === null && nullable) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max)
    return `must be an integer from ${min} to ${max}${nullable ? ', or null' : ''}`;
  return undefined;
}

const TEXT_FIELDS: ReadonlyArray<readonly [string, number]> = [
  ['method', 300],
  ['keyId', 200],
  ['teamId', 200],
  ['customerId', 200],
  ['subject', 500],
  ['upstream', 200],
  ['tool', 500],
  ['arguments', 4 * 1024 * 1024],
  ['result', 4 * 1024 * 1024],
  ['parentId', 200],
  ['sessionId', 200],
  ['clientName', 200],
  ['clientVersion', 100],
];

/**
 * Checks one parsed record against `auditRecordSchema` without zod (the ingest hot path: a fifth of the
 * cost), and also refuses NUL characters, which PostgreSQL text cannot store. Returns the record, or what
 * is wrong with it as `field: problem` (test/unit/audit-record-check.test.ts holds it to the schema).
 */
export function checkAuditRecord(value: unknown): AuditRecordInput | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the record must be a JSON object';
  const r = value as Record<string, unknown>;
  const id = r['id'];
  if (typeof id !== 'string' || !UUID.test(id)) return 'id: must be a lower-case UUIDv7';
  const time = r['time'];
  if (typeof time !== 'number' || !Number.isSafeInteger(time) || time <= 0)
    return 'time: must be a positive integer (ms since the epoch)';
  const node = badText(r['node'], 200, false) ?? (r['node'] === '' ? 'must not be empty' : undefined);
  if (node !== undefined) return `node: ${node}`;
  if (!KINDS.has(r['kind'])) return `kind: must be one of ${[...KINDS].join(', ')}`;
  if (!STATUSES.has(r['status'])) return `status: must be one of ${[...STATUSES].join(', ')}`;
  for (const [field, max] of TEXT_FIELDS) {
    const problem = badText(r[field], max);
    if (problem !== undefined) return `${field}: ${problem}`;
  }
  const error = r['error'];
  if (error !== null) {
    if (typeof error !== 'object' || error === undefined || Array.isArray(error))
      return 'error: must be {code, message} or null';
    const e = error as Record<string, unknown>;
    const code = badInt(e['code'], Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, false);
    if (code !== undefined) return `error.code: ${code}`;
    const message = badText(e['message'], 8192, false);
    if (message !== undefined) return `error.message: ${message}`;
  }
  const problem =
    prefixed('latencyUs', badInt(r['latencyUs'], 0, MAX_MICROS, false)) ??
    prefixed('gatewayLatencyUs', badInt(r['gatewayLatencyUs'], 0, MAX_MICROS, false)) ??
    prefixed('upstreamLatencyUs', badInt(r['upstreamLatencyUs'], 0, MAX_MICROS, true)) ??
    prefixed('costMicros', badInt(r['costMicros'], 0, Number.MAX_SAFE_INTEGER, true));
  if (problem !== undefined) return problem;
  // Optional: nodes older than this field send none.
  if (r['modelCostMicros'] === undefined) r['modelCostMicros'] = null;
  else {
    const model = badInt(r['modelCostMicros'], 0, Number.MAX_SAFE_INTEGER, true);
    if (model !== undefined) return `modelCostMicros: ${model}`;
  }
  const traceId = r['traceId'];
  if (traceId !== null && (typeof traceId !== 'string' || !TRACE_ID.test(traceId)))
    return 'traceId: must be 32 lower-case hex digits or null';
  if (Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16) !== time)
    return 'time: must be the timestamp of the UUIDv7 id';
  return r as unknown as AuditRecordInput;
}

function prefixed(field: string, problem: string | undefined): string | undefined {
  return problem === undefined ? undefined : `${field}: ${problem}`;
}

/**
 * Parses one shipped record, a row (the values in AUDIT_ROW_FIELDS order) or an object: the record, or what
 * is wrong with it (unparseable JSON, or a field).
 */
export function parseAuditLine(json: string): AuditRecordInput | string {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    return `not JSON (${error instanceof Error ? error.message : String(error)})`;
  }
  if (!Array.isArray(value)) return checkAuditRecord(value);
  try {
    return checkAuditRecord(rowRecord(value));
  } catch (error) {
    if (!isTooDeep(error)) throw error;
    return 'arguments or result: nested too deeply to store';
  }
}

/** Parses one shipped record; undefined (and logged by the caller) when it is not a valid record. */
export function parseAuditRecord(json: string): AuditRecordInput | undefined {
  const parsed = parseAuditLine(json);
  return typeof parsed === 'string' ? undefined : parsed;
}

/** The records of one shipped batch, and those refused (at most the first few problems are kept, to log). */
export interface ParsedAuditBatch {
  readonly records: AuditRecordInput[];
  readonly rejected: number;
  /** `record <n> (id <id>): <problem>` for the first refused records. */
  readonly problems: string[];
}

const KEPT_PROBLEMS = 3;

/**
 * Parses a batch as the node's spool holds it (one JSON row or object per line, UTF-8): decoded once,
 * each line parsed and checked; an empty line is skipped.
 */
export function parseAuditBatch(lines: Iterable<string>): ParsedAuditBatch {
  const records: AuditRecordInput[] = [];
  const problems: string[] = [];
  let rejected = 0;
  let n = 0;
  for (const line of lines) {
    n++;
    const parsed = parseAuditLine(line);
    if (typeof parsed !== 'string') {
      records.push(parsed);
      continue;
    }
    rejected++;
    if (problems.length < KEPT_PROBLEMS) {
      const id = /^\["([^"]{1,64})"|"id":"([^"]{1,64})"/
        .exec(line)
        ?.slice(1)
        .find((found) => found !== undefined);
      problems.push(`record ${n}${id === undefined ? '' : ` (id ${id})`}: ${parsed}`);
    }
  }
  return { records, rejected, problems };
}

/** The lines of an NDJSON buffer (decoded once; empty lines left out). */
export function* ndjsonLines(bytes: Uint8Array): Generator<string> {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    if (end > start) yield text.slice(start, end);
    start = end + 1;
  }
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** `audit_events_YYYYMMDD`, the partition holding the day of `ms`. */
export function partitionName(ms: number): string {
  return `audit_events_${new Date(ms).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

/**
 * Stores audit records: idempotently by id (a record shipped twice is stored once), in the hash
 * chain (each new row linked to the one before under a row lock on `audit_chain_head`, so replicas
 * inserting at once stay in one chain), into day partitions created on first use. Retention drops
 * whole days and moves the chain's anchor past them.
 */
export class AuditStore {
  private readonly partitions = new Set<string>();
  private failed = 0;

  constructor(
    private readonly dataSource: DataSource,
    private readonly logger: Logger,
    /** Told of each committed record (the GraphQL subscription's source). */
    private readonly feed?: AuditFeed,
    /**
     * Rows go in with `COPY … FROM STDIN` (a real PostgreSQL; a third of the database's time per row
     * against one JSON parameter); false: one JSON parameter (the embedded database).
     */
    private readonly copy = true,
  ) {}

  /** Inserts that failed on a record stored already and were done again (each a failed COPY in PostgreSQL's log). */
  get failedInserts(): number {
    return this.failed;
  }

  /** Inserts the records not stored yet; resolves once committed. */
  async insert(records: readonly AuditRecordInput[], mayRepeat = false): Promise<number> {
    if (records.length === 0) return 0;
    const unique = new Map<string, AuditRecordInput>();
    for (const record of records) unique.set(record.id, record);
    const fresh = [...unique.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    let stored: ChainedRow[];
    if (mayRepeat) stored = await this.insertChained(fresh, true);
    else
      try {
        // Optimistic: a batch is new unless a node sends it again (after an outage, or an ack that was lost).
        // Looking every id up first cost an index probe per row on every batch; the primary key catches those,
        // at the price of a failed COPY (and an ERROR line in PostgreSQL's log): callers that expect repeats
        // (the first batches of a node's new stream) say `mayRepeat` and have the ids looked up first.
        stored = await this.insertChained(fresh, false);
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        this.failed++;
        stored = await this.insertChained(fresh, true);
      }
    this.feed?.stored(stored);
    return stored.length;
  }

  /** One transaction: the records (sorted by id; without those stored already if `leaveOutStored`) chained. */
  private async insertChained(sorted: readonly AuditRecordInput[], leaveOutStored: boolean): Promise<ChainedRow[]> {
    const created: string[] = [];
    const rows = await this.dataSource.transaction(async (manager) => {
      const head = (await manager.query(
        `SELECT seq::text AS seq, last_id::text AS "lastId", encode(hash, 'hex') AS hash FROM audit_chain_head FOR ` +
          `UPDATE`,
      )) as Array<{ seq: string; lastId: string | null; hash: string }>;
      const fresh = leaveOutStored ? await notStored(manager, sorted) : sorted;
      if (fresh.length === 0) return [];
      created.push(...(await this.createPartitions(manager, fresh)));
      const chain: Chain = {
        seq: BigInt(head[0]!.seq),
        prevId: head[0]!.lastId,
        prevHash: Buffer.from(head[0]!.hash, 'hex'),
      };
      const rows: ChainedRow[] = [];
      if (this.copy) await copyRows(manager, fresh, chain, rows);
      else {
        const linked = fresh.map((record) => link(chain, record));
        for (const { row } of linked) rows.push(row);
        // One JSON parameter for the whole batch: serialized natively in one call and parsed by PostgreSQL in
        // one pass (28 array parameters cost the driver an escape per value, 28,000 a batch of 1,000).
        await manager.query(
          `INSERT INTO audit_events (${INSERT_COLUMNS})
           SELECT ${SELECT_COLUMNS} FROM json_to_recordset($1::json) AS t(${RECORD_TYPES})`,
          [JSON.stringify(linked.map(({ row, hash }) => insertRow(row, hash)))],
        );
      }
      await manager.query(`UPDATE audit_chain_head SET seq = $1, last_id = $2, hash = decode($3, 'hex')`, [
        String(chain.seq),
        chain.prevId,
        chain.prevHash.toString('hex'),
      ]);
      return rows;
    });
    // Only once committed: a partition created by a transaction that rolled back does not exist, and a
    // cache that said it did would send that day's next rows to a missing partition.
    for (const name of created) this.partitions.add(name);
    return rows;
  }

  /**
   * Retention: drops the day partitions that end before `cutoff` (whole days, never rows), after recording
   * each run of chain positions they hold in `audit_chain_gaps` (so verification tells those positions from
   * deleted rows, and checks the rows kept between them) and moving the chain's anchor to the last row
   * they hold.
   */
  async dropBefore(cutoff: Date): Promise<string[]> {
    const dropped: string[] = [];
    await this.dataSource.transaction(async (manager) => {
      await manager.query(`SELECT 1 FROM audit_chain_head FOR UPDATE`);
      const children = (await manager.query(
        `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace
          WHERE p.relname = 'audit_events' AND n.nspname = current_schema() ORDER BY c.relname`,
      )) as Array<{ name: string }>;
      const old = children
        .map((c) => c.name)
        .filter((name) => /^audit_events_\d{8}$/.test(name))
        .filter((name) => dayStart(name) + DAY_MS <= cutoff.getTime());
      if (old.length === 0) return;
      const runs = await droppedRuns(manager, new Date(dayStart(old[old.length - 1]!) + DAY_MS));
      for (const run of runs)
        await manager.query(
          `INSERT INTO audit_chain_gaps (from_seq, to_seq, last_id, last_hash) VALUES ($1, $2, $3, decode($4, 'hex'))`,
          [run.fromSeq, run.toSeq, run.lastId, run.lastHash],
        );
      const last = runs[runs.length - 1];
      if (last !== undefined) {
        // The anchor only moves forward: a record that reached the control plane late (a node's backlog) has a
        // later seq than the newer days stored before it, so a day dropped later can end at an earlier seq.
        // (Verification starts after it only on a database whose gaps were not recorded, see audit-verify.ts.)
        await manager.query(
          `INSERT INTO audit_chain_anchor (seq, last_id, hash, dropped_before) VALUES ($1, $2, decode($3, 'hex'), $4)
           ON CONFLICT (singleton) DO UPDATE SET
             seq = greatest(audit_chain_anchor.seq, EXCLUDED.seq),
             last_id = CASE WHEN EXCLUDED.seq > audit_chain_anchor.seq THEN EXCLUDED.last_id
                            ELSE audit_chain_anchor.last_id END,
             hash = CASE WHEN EXCLUDED.seq > audit_chain_anchor.seq THEN EXCLUDED.hash ELSE audit_chain_anchor.hash END,
             dropped_before = greatest(audit_chain_anchor.dropped_before, EXCLUDED.dropped_before)`,
          [last.toSeq, last.lastId, last.lastHash, cutoff],
        );
      }
      for (const name of old) {
        await manager.query(`DROP TABLE "${name}"`);
        dropped.push(name);
      }
    });
    for (const name of dropped) this.partitions.delete(name);
    if (dropped.length > 0) this.logger.info({ partitions: dropped }, 'audit retention dropped whole days');
    return dropped;
  }

  /** Creates the day partitions the records need that are not known to exist; returns their names. */
  private async createPartitions(manager: EntityManager, records: readonly AuditRecordInput[]): Promise<string[]> {
    const days = new Set<number>();
    for (const record of records) days.add(Math.floor(record.time / DAY_MS));
    const created: string[] = [];
    for (const day of days) {
      const name = partitionName(day * DAY_MS);
      if (this.partitions.has(name)) continue;
      const start = dayStart(name);
      await manager.query(
        `CREATE TABLE IF NOT EXISTS "${name}" PARTITION OF audit_events FOR VALUES FROM ` +
          `('${new Date(start).toISOString()}') TO ('${new Date(start + DAY_MS).toISOString()}')`,
      );
      created.push(name);
    }
    return created;
  }
}

/** The records whose id is not stored yet (a batch sent again), looked up by primary key. */
async function notStored(
  manager: EntityManager,
  records: readonly AuditRecordInput[],
): Promise<readonly AuditRecordInput[]> {
  // Ids and times as array literals built here (checked UUIDs and ISO times need no quoting): the driver
  // would escape each element of a JavaScript array.
  let ids = '';
  let times = '';
  for (const record of records) {
    ids += ids === '' ? record.id : `,${record.id}`;
    times += `${times === '' ? '' : ','}${isoTime(record.time)}`;
  }
  const present = (await manager.query(
    `SELECT e.id::text AS id FROM audit_events e
       JOIN unnest($1::uuid[], $2::timestamptz[]) AS t(id, time) ON e.id = t.id AND e.time = t.time`,
    [`{${ids}}`, `{${times}}`],
  )) as Array<{ id: string }>;
  if (present.length === 0) return records;
  const stored = new Set(present.map((row) => row.id));
  return records.filter((record) => !stored.has(record.id));
}

/** PostgreSQL's unique_violation, as the driver throws it or as TypeORM wraps it. */
function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, driverError } = error as { code?: unknown; driverError?: unknown };
  return code === '23505' || (driverError !== undefined && isUniqueViolation(driverError));
}

/** Where the chain stands while a transaction's rows are linked to it. */
interface Chain {
  seq: bigint;
  prevId: string | null;
  prevHash: Buffer;
}

/** The record as the chain's next row, and its link (hex); moves the chain on. */
function link(chain: Chain, record: AuditRecordInput): { row: ChainedRow; hash: string } {
  chain.seq += 1n;
  const row = toRow(record, String(chain.seq), chain.prevId);
  chain.prevHash = chainLink(chain.prevHash, canonicalRow(row));
  chain.prevId = row.id;
  return { row, hash: chain.prevHash.toString('hex') };
}

const INSERT_COLUMNS =
  'id, time, seq, prev_id, hash, node_id, kind, status, method, key_id, team_id, customer_id, subject, upstream, ' +
  'tool, arguments, result, error_code, error_message, latency_us, gateway_latency_us, upstream_latency_us, ' +
  'cost_micros, parent_id, trace_id, session_id, client_name, client_version, model_cost_micros';
const SELECT_COLUMNS = INSERT_COLUMNS.replace('hash', "decode(hash, 'hex')");
const RECORD_TYPES =
  'id uuid, time timestamptz, seq bigint, prev_id uuid, hash text, node_id text, kind text, status text, ' +
  'method text, key_id text, team_id text, customer_id text, subject text, upstream text, tool text, ' +
  'arguments text, result text, ' +
  'error_code integer, error_message text, latency_us integer, gateway_latency_us integer, upstream_latency_us ' +
  'integer, cost_micros bigint, parent_id text, trace_id text, session_id text, client_name text, client_version ' +
  'text, model_cost_micros bigint';

/** A chained row as one element of the insert's JSON (keys are the columns; the time as ISO text). */
function insertRow(r: ChainedRow, hash: string): Record<string, unknown> {
  return {
    id: r.id,
    time: isoTime(r.time.getTime()),
    seq: r.seq,
    prev_id: r.prevId,
    hash,
    node_id: r.nodeId,
    kind: r.kind,
    status: r.status,
    method: r.method,
    key_id: r.keyId,
    team_id: r.teamId,
    customer_id: r.customerId,
    subject: r.subject,
    upstream: r.upstream,
    tool: r.tool,
    arguments: r.arguments,
    result: r.result,
    error_code: r.errorCode,
    error_message: r.errorMessage,
    latency_us: r.latencyUs,
    gateway_latency_us: r.gatewayLatencyUs,
    upstream_latency_us: r.upstreamLatencyUs,
    cost_micros: r.costMicros,
    parent_id: r.parentId,
    trace_id: r.traceId,
    session_id: r.sessionId,
    client_name: r.clientName,
    client_version: r.clientVersion,
    model_cost_micros: r.modelCostMicros,
  };
}

const COPY_SPECIAL = /[\\\n\r\t]/;
const COPY_ESCAPED = /[\\\n\r\t]/g;
const COPY_ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** A text value in COPY's text format: `\N` for null; backslash, newline, return and tab escaped. */
function copyText(value: string | null): string {
  if (value === null) return '\\N';
  return COPY_SPECIAL.test(value) ? value.replace(COPY_ESCAPED, (c) => COPY_ESCAPES[c]!) : value;
}

function copyNumber(value: number | string | null | undefined): string {
  return value === null || value === undefined ? '\\N' : String(value);
}

/** The rows as COPY text, one line each, in INSERT_COLUMNS' order (the hash as bytea hex). */
function copyLine(r: ChainedRow, hash: string): string {
  return (
    `${r.id}\t${isoTime(r.time.getTime())}\t${r.seq}\t${r.prevId ?? '\\N'}\t\\\\x${hash}\t${copyText(r.nodeId)}\t` +
    `${r.kind}\t${r.status}\t${copyText(r.method)}\t${copyText(r.keyId)}\t${copyText(r.teamId)}\t` +
    `${copyText(r.customerId)}\t${copyText(r.subject)}\t${copyText(r.upstream)}\t${copyText(r.tool)}\t` +
    `${copyText(r.arguments)}\t${copyText(r.result)}\t${copyNumber(r.errorCode)}\t${copyText(r.errorMessage)}\t` +
    `${r.latencyUs}\t${r.gatewayLatencyUs}\t${copyNumber(r.upstreamLatencyUs)}\t${copyNumber(r.costMicros)}\t` +
    `${copyText(r.parentId)}\t${copyText(r.traceId)}\t${copyText(r.sessionId)}\t${copyText(r.clientName)}\t` +
    `${copyText(r.clientVersion)}\t${copyNumber(r.modelCostMicros)}\n`
  );
}

/**
 * Rows per chunk of COPY text. The chunks are chained as they are made: PostgreSQL parses and indexes a chunk
 * while the next one is hashed and formatted here, where one text for the whole transaction (up to
 * AUDIT_RECORDS_PER_INSERT rows) kept it waiting until the last row was ready.
 */
export const COPY_CHUNK_ROWS = 500;
/** What a chunk's COPY text starts in (grown as needed). */
const COPY_CHUNK_BYTES = 256 * 1024;

/**
 * `COPY audit_events FROM STDIN` on the transaction's own connection: the records linked into the chain as
 * their chunk is made (each row pushed to `rows`).
 */
async function copyRows(
  manager: EntityManager,
  records: readonly AuditRecordInput[],
  chain: Chain,
  rows: ChainedRow[],
): Promise<void> {
  const client = connectionOf(manager);
  if (client === undefined) throw new Error('audit insert: no database connection in the transaction');
  const stream = client.query(copyFrom(`COPY audit_events (${INSERT_COLUMNS}) FROM STDIN`));
  await pipeline(Readable.from(copyChunks(records, chain, rows)), stream);
}

function* copyChunks(records: readonly AuditRecordInput[], chain: Chain, rows: ChainedRow[]): Generator<Buffer> {
  for (let start = 0; start < records.length; start += COPY_CHUNK_ROWS) {
    // Each line encoded straight into the chunk's buffer (a string built by += is a rope flattened at the end).
    let bytes = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
    let end = 0;
    for (let i = start; i < Math.min(start + COPY_CHUNK_ROWS, records.length); i++) {
      const { row, hash } = link(chain, records[i]!);
      rows.push(row);
      const line = copyLine(row, hash);
      if (end + line.length * 3 > bytes.length) {
        const bigger = Buffer.allocUnsafe(Math.max(bytes.length * 2, end + line.length * 3));
        bytes.copy(bigger, 0, 0, end);
        bytes = bigger;
      }
      end += bytes.write(line, end);
    }
    yield bytes.subarray(0, end);
  }
}

function connectionOf(manager: EntityManager): pg.ClientBase | undefined {
  const runner = manager.queryRunner as (QueryRunner & { databaseConnection?: pg.ClientBase }) | undefined;
  return runner?.databaseConnection;
}

function dayStart(partition: string): number {
  const day = partition.slice(-8);
  return Date.UTC(Number(day.slice(0, 4)), Number(day.slice(4, 6)) - 1, Number(day.slice(6, 8)));
}

function toRow(record: AuditRecordInput, seq: string, prevId: string | null): ChainedRow {
  return {
    id: record.id,
    time: new Date(record.time),
    seq,
    prevId,
    nodeId: record.node,
    kind: record.kind,
    status: record.status,
    method: record.method,
    keyId: record.keyId,
    teamId: record.teamId,
    customerId: record.customerId,
    subject: record.subject,
    upstream: record.upstream,
    tool: record.tool,
    arguments: record.arguments,
    result: record.result,
    errorCode: record.error?.code ?? null,
    errorMessage: record.error?.message ?? null,
    latencyUs: record.latencyUs,
    gatewayLatencyUs: record.gatewayLatencyUs,
    upstreamLatencyUs: record.upstreamLatencyUs,
    costMicros: record.costMicros === null ? null : String(record.costMicros),
    parentId: record.parentId,
    traceId: record.traceId,
    sessionId: record.sessionId,
    clientName: record.clientName,
    clientVersion: record.clientVersion,
    modelCostMicros:
      record.modelCostMicros === undefined || record.modelCostMicros === null ? null : String(record.modelCostMicros),
  };
}

/** A run of consecutive chain positions dropped together, and the last row in it (the link the next row names). */
interface DroppedRun {
  readonly fromSeq: string;
  readonly toSeq: string;
  readonly lastId: string;
  readonly lastHash: string;
}

/**
 * The runs of positions among the rows stored before `end` (the days about to be dropped) with no row kept
 * between them, in seq order: usually one, more where late records (a node's backlog) were stored after newer
 * days. Found with a few lookups on the seq index per run, never a scan of the days dropped (this runs under
 * the chain head's lock, which every insert waits for).
 */
async function droppedRuns(manager: EntityManager, end: Date): Promise<DroppedRun[]> {
  const runs: DroppedRun[] = [];
  const seqOf = async (sql: string, params: unknown[]) =>
    ((await manager.query(sql, params)) as Array<{ seq: string | null }>)[0]?.seq ?? null;
  let from = await seqOf(`SELECT min(seq)::text AS seq FROM audit_events WHERE time < $1`, [end]);
  while (from !== null) {
    // The first row kept after the run's start ends the run.
    const kept = await seqOf(`SELECT min(seq)::text AS seq FROM audit_events WHERE time >= $1 AND seq > $2`, [
      end,
      from,
    ]);
    const last = (await manager.query(
      `SELECT seq::text AS seq, id::text AS id, encode(hash, 'hex') AS hash FROM audit_events
        WHERE time < $1 AND ($2::bigint IS NULL OR seq < $2::bigint) ORDER BY audit_events.seq DESC LIMIT 1`,
      [end, kept],
    )) as Array<{ seq: string; id: string; hash: string }>;
    const row = last[0]!;
    runs.push({ fromSeq: from, toSeq: row.seq, lastId: row.id, lastHash: row.hash });
    from =
      kept === null
        ? null
        : await seqOf(`SELECT min(seq)::text AS seq FROM audit_events WHERE time < $1 AND seq > $2`, [end, kept]);
  }
  return runs;
}
