import type { DataSource, EntityManager } from 'typeorm';
import { z } from 'zod';
import type { Logger } from '../../../common/src/index.ts';
import { chainHash, type ChainedRow } from './audit-chain.ts';
import type { AuditFeed } from './audit-feed.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const text = (max: number) => z.string().max(max).nullable();
const micros = z.number().int().min(0).max(2_147_483_647);

/** An audit record as a node ships it (data-plane/src/audit/audit-record.ts), validated at the boundary. */
export const auditRecordSchema = z
  .object({
    id: z.string().regex(UUID, 'must be a lower-case UUIDv7'),
    time: z.number().int().positive(),
    node: z.string().min(1).max(200),
    kind: z.enum(['discovery', 'tool_call', 'request', 'refusal']),
    status: z.enum(['ok', 'tool_error', 'error', 'unavailable', 'refused']),
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

/** Parses one shipped record; undefined (and logged by the caller) when it is not a valid record. */
export function parseAuditRecord(json: string): AuditRecordInput | undefined {
  try {
    const parsed = auditRecordSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
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

  constructor(
    private readonly dataSource: DataSource,
    private readonly logger: Logger,
    /** Told of each committed record (the GraphQL subscription's source). */
    private readonly feed?: AuditFeed,
  ) {}

  /** Inserts the records not stored yet; resolves once committed. */
  async insert(records: readonly AuditRecordInput[]): Promise<number> {
    if (records.length === 0) return 0;
    const stored = await this.insertChained(records);
    this.feed?.stored(stored);
    return stored.length;
  }

  private async insertChained(records: readonly AuditRecordInput[]): Promise<ChainedRow[]> {
    const unique = new Map<string, AuditRecordInput>();
    for (const record of records) unique.set(record.id, record);
    return this.dataSource.transaction(async (manager) => {
      const head = (await manager.query(
        `SELECT seq::text AS seq, last_id::text AS "lastId", encode(hash, 'hex') AS hash FROM audit_chain_head FOR ` +
          `UPDATE`,
      )) as Array<{ seq: string; lastId: string | null; hash: string }>;
      const ids = [...unique.keys()];
      const times = ids.map((id) => new Date(unique.get(id)!.time));
      const present = (await manager.query(
        `SELECT e.id::text AS id FROM audit_events e
           JOIN unnest($1::uuid[], $2::timestamptz[]) AS t(id, time) ON e.id = t.id AND e.time = t.time`,
        [ids, times],
      )) as Array<{ id: string }>;
      for (const { id } of present) unique.delete(id);
      if (unique.size === 0) return [];
      const fresh = [...unique.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
      await this.ensurePartitions(
        manager,
        fresh.map((r) => r.time),
      );
      let seq = BigInt(head[0]!.seq);
      let prevId = head[0]!.lastId;
      let prevHash = head[0]!.hash;
      const rows: Array<ChainedRow & { hash: string }> = [];
      for (const record of fresh) {
        seq += 1n;
        const row = toRow(record, String(seq), prevId);
        const hash = chainHash(prevHash, row);
        rows.push({ ...row, hash });
        prevId = row.id;
        prevHash = hash;
      }
      await manager.query(
        `INSERT INTO audit_events (id, time, seq, prev_id, hash, node_id, kind, status, method, key_id, team_id,
           customer_id, subject, upstream, tool, arguments, result, error_code, error_message, latency_us,
           gateway_latency_us, upstream_latency_us, cost_micros, parent_id, trace_id, session_id, client_name,
             client_version, model_cost_micros)
         SELECT id, time, seq, prev_id, decode(hash, 'hex'), node_id, kind, status, method, key_id, team_id,
           customer_id, subject, upstream, tool, arguments, result, error_code, error_message, latency_us,
           gateway_latency_us, upstream_latency_us, cost_micros, parent_id, trace_id, session_id, client_name,
             client_version, model_cost_micros
         FROM unnest($1::uuid[], $2::timestamptz[], $3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::text[],
           $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
           $16::text[], $17::text[], $18::integer[], $19::text[], $20::integer[], $21::integer[], $22::integer[],
           $23::bigint[], $24::text[], $25::text[], $26::text[], $27::text[], $28::text[], $29::bigint[])
           AS t(id, time, seq, prev_id, hash, node_id, kind, status, method, key_id, team_id, customer_id, subject,
             upstream, tool, arguments, result, error_code, error_message, latency_us, gateway_latency_us,
             upstream_latency_us, cost_micros, parent_id, trace_id, session_id, client_name, client_version,
             model_cost_micros)`,
        [
          rows.map((r) => r.id),
          rows.map((r) => r.time),
          rows.map((r) => r.seq),
          rows.map((r) => r.prevId),
          rows.map((r) => r.hash),
          rows.map((r) => r.nodeId),
          rows.map((r) => r.kind),
          rows.map((r) => r.status),
          rows.map((r) => r.method),
          rows.map((r) => r.keyId),
          rows.map((r) => r.teamId),
          rows.map((r) => r.customerId),
          rows.map((r) => r.subject),
          rows.map((r) => r.upstream),
          rows.map((r) => r.tool),
          rows.map((r) => r.arguments),
          rows.map((r) => r.result),
          rows.map((r) => r.errorCode),
          rows.map((r) => r.errorMessage),
          rows.map((r) => r.latencyUs),
          rows.map((r) => r.gatewayLatencyUs),
          rows.map((r) => r.upstreamLatencyUs),
          rows.map((r) => r.costMicros),
          rows.map((r) => r.parentId),
          rows.map((r) => r.traceId),
          rows.map((r) => r.sessionId),
          rows.map((r) => r.clientName),
          rows.map((r) => r.clientVersion),
          rows.map((r) => r.modelCostMicros ?? null),
        ],
      );
      await manager.query(`UPDATE audit_chain_head SET seq = $1, last_id = $2, hash = decode($3, 'hex')`, [
        String(seq),
        prevId,
        prevHash,
      ]);
      return rows;
    });
  }

  /**
   * Retention: drops the day partitions that end before `cutoff` (whole days, never rows), after
   * moving the chain's anchor to the last row they hold, so verification starts after them.
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
      const last = (await manager.query(
        `SELECT seq::text AS seq, id::text AS id, encode(hash, 'hex') AS hash FROM audit_events
          WHERE time < $1 ORDER BY seq DESC LIMIT 1`,
        [new Date(dayStart(old[old.length - 1]!) + DAY_MS)],
      )) as Array<{ seq: string; id: string; hash: string }>;
      if (last[0] !== undefined) {
        await manager.query(
          `INSERT INTO audit_chain_anchor (seq, last_id, hash, dropped_before) VALUES ($1, $2, decode($3, 'hex'), $4)
           ON CONFLICT (singleton) DO UPDATE SET seq = EXCLUDED.seq, last_id = EXCLUDED.last_id, hash = EXCLUDED.hash,
             dropped_before = EXCLUDED.dropped_before`,
          [last[0].seq, last[0].id, last[0].hash, cutoff],
        );
      }
      for (const name of old) {
        await manager.query(`DROP TABLE "${name}"`);
        this.partitions.delete(name);
        dropped.push(name);
      }
    });
    if (dropped.length > 0) this.logger.info({ partitions: dropped }, 'audit retention dropped whole days');
    return dropped;
  }

  private async ensurePartitions(manager: EntityManager, times: readonly number[]): Promise<void> {
    for (const name of new Set(times.map(partitionName))) {
      if (this.partitions.has(name)) continue;
      const start = dayStart(name);
      await manager.query(
        `CREATE TABLE IF NOT EXISTS "${name}" PARTITION OF audit_events FOR VALUES FROM ` +
          `('${new Date(start).toISOString()}') TO ('${new Date(start + DAY_MS).toISOString()}')`,
      );
      this.partitions.add(name);
    }
  }
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
