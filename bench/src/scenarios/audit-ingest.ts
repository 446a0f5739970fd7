import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createLogger } from '../../../common/src/index.ts';
import { auditRow, newAuditRecord } from '../../../data-plane/src/audit/audit-record.ts';
import { AuditSpool } from '../../../data-plane/src/audit/audit-spool.ts';
import { processCpuMs } from '../cpu.ts';
import { postgresBackendsOf } from '../postgres-backends.ts';
import { ManagedProcess, freePort } from '../processes.ts';
import type { TargetCheck } from '../results.ts';
import { CLI_MAIN, nodeFlags } from '../targets/portcullis.ts';
import { postgresProblem } from './databases.ts';
import { startControlPlane } from './propagation.ts';

/**
 * Audit ingest end to end: records per second from a node's spool to rows in PostgreSQL. The bench
 * writes `records` tool-call records (arguments and result as a bench call has them) into a spool
 * directory with the node's own `AuditSpool`, then starts a control plane on a fresh schema of the
 * real PostgreSQL and a `portcullis data-plane` node on that spool (as a node restarted after an
 * outage finds its backlog): the node reads the spool, ships batches over the config stream, the
 * control plane validates, chains and inserts them and acknowledges each. The bench reads the chain
 * head's seq (every `pollMs`; rows committed) and counts the rows at the end; the rate is taken from the
 * first committed batch to the last row, so the node's start is not in it. Node and control-plane CPU
 * per record are read from /proc over the same span, and so is the CPU of the PostgreSQL backends serving the
 * control plane when the server runs on this machine.
 */

export interface AuditIngestRow {
  records: number;
  /** Rows found in audit_events at the end (must equal records). */
  stored: number;
  /** From the first committed batch to the last row. */
  seconds: number;
  recordsPerSec: number;
  /** CPU per record of the node (read, ship) and of the control plane (validate, chain, insert), µs. */
  nodeCpuPerRecordUs: number | undefined;
  controlPlaneCpuPerRecordUs: number | undefined;
  /**
   * CPU per record of the PostgreSQL backends serving the control plane (parse, index upkeep, WAL), µs; undefined
   * when the server is not a local process. WAL writer and checkpoints, shared with everything else, are not in it.
   */
  postgresCpuPerRecordUs: number | undefined;
}

export interface AuditIngestOptions {
  postgresUrl: string;
  records: number;
  /** How often the rows are counted (default 10 ms). */
  pollMs?: number;
  /** Give up after this long (default 120 s): the row then says how many arrived. */
  timeoutMs?: number;
}

/** Issue 14: a node's records reach PostgreSQL at 30,000 a second or more on this machine. */
export const AUDIT_INGEST_TARGET_PER_SEC = 30_000;

const logger = createLogger({ level: 'silent' });

/** `count` records as the record step writes them for a bench call, straight into a spool directory. */
export async function fillSpool(dir: string, count: number): Promise<void> {
  const spool = await AuditSpool.open({ dir, maxBytes: 2 ** 40, logger });
  try {
    for (let i = 0; i < count; i += 1_000) {
      const written: Array<Promise<void> | false> = [];
      for (let j = i; j < Math.min(count, i + 1_000); j++) {
        const record = newAuditRecord('bench-ingest', 'tool_call', 'ok');
        Object.assign(record, {
          method: 'tools/call',
          keyId: 'bench-key',
          teamId: 'bench-team',
          upstream: 'ev',
          tool: 'ev__echo',
          arguments: JSON.stringify({ message: `hello ${j}` }),
          result: JSON.stringify({ content: [{ type: 'text', text: `Echo: hello ${j}` }] }),
          latencyUs: 900 + (j % 200),
          gatewayLatencyUs: 60 + (j % 40),
          upstreamLatencyUs: 840 + (j % 160),
          sessionId: randomBytes(8).toString('hex'),
          clientName: 'bench',
          clientVersion: '1',
        });
        written.push(spool.append(auditRow(record)));
      }
      await Promise.all(written);
    }
  } finally {
    await spool.close();
  }
}

async function countRows(client: pg.Client, schema: string): Promise<number> {
  const result = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM "${schema}".audit_events`);
  return Number(result.rows[0]?.n ?? 0);
}

/**
 * Rows committed so far, read from the chain's head (its seq is the number of rows chained into a fresh
 * schema): one row read, where `count(*)` every 10 ms scanned the growing table (30 ms at 100,000 rows
 * here) and took a core from the database being measured.
 */
async function chainedRows(client: pg.Client, schema: string): Promise<number> {
  const result = await client.query<{ n: string }>(`SELECT seq::text AS n FROM "${schema}".audit_chain_head`);
  return Number(result.rows[0]?.n ?? 0);
}

/** One row, or undefined (with the reason in the notes) when the real PostgreSQL does not answer. */
export async function measureAuditIngest(
  options: AuditIngestOptions,
  progress: (line: string) => void,
  note: (line: string) => void,
): Promise<AuditIngestRow | undefined> {
  const problem = await postgresProblem(options.postgresUrl);
  if (problem) {
    note(`audit ingest not measured: ${options.postgresUrl} did not answer (${problem})`);
    return undefined;
  }
  const pollMs = options.pollMs ?? 10;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const spoolDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-ingest-'));
  progress(`audit ingest: writing ${options.records} records to a spool…`);
  await fillSpool(spoolDir, options.records);
  progress('audit ingest: a control plane on the real PostgreSQL and a node on that spool…');
  const plane = await startControlPlane('postgres', options.postgresUrl);
  const client = new pg.Client({ connectionString: options.postgresUrl });
  let node: ManagedProcess | undefined;
  try {
    await client.connect();
    const schema = plane.schema!;
    node = new ManagedProcess(
      'portcullis data-plane (audit ingest)',
      process.execPath,
      [
        ...nodeFlags(),
        '--import',
        'tsx',
        CLI_MAIN,
        'data-plane',
        '--control-plane',
        plane.grpcAddress,
        '--node-id',
        'bench-ingest',
        '--port',
        String(await freePort()),
        '--audit-spool-dir',
        spoolDir,
        '--log-level',
        'warn',
      ],
      { keepStdout: true, env: { PORTCULLIS_NODE_TOKEN: plane.nodeToken } },
    );
    const deadline = Date.now() + timeoutMs;
    let first:
      | {
          at: number;
          rows: number;
          nodeMs: number | undefined;
          planeMs: number | undefined;
          postgresMs: Map<number, number>;
        }
      | undefined;
    let rows = 0;
    let last = performance.now();
    while (rows < options.records && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, pollMs));
      // Reading the head before the control plane created it (its migrations) fails: not there yet.
      rows = await chainedRows(client, schema).catch(() => 0);
      last = performance.now();
      if (first === undefined && rows > 0) {
        const at = last;
        const [nodeMs, planeMs] = [processCpuMs(node.pid), processCpuMs(plane.pid)];
        const postgresMs = new Map<number, number>();
        for (const pid of await postgresBackendsOf(client, plane.pid).catch(() => [])) {
          const ms = processCpuMs(pid);
          if (ms !== undefined) postgresMs.set(pid, ms);
        }
        first = { at, rows, nodeMs, planeMs, postgresMs };
      }
    }
    const nodeMs = processCpuMs(node.pid);
    const planeMs = processCpuMs(plane.pid);
    const postgresMs = await postgresSpentMs(client, plane.pid, first?.postgresMs);
    // The rows themselves, counted once at the end.
    const stored = await countRows(client, schema).catch(() => 0);
    if (first === undefined) throw new Error(`no audit row reached PostgreSQL within ${timeoutMs} ms`);
    // Everything in one batch: the span is one poll at least.
    const span = Math.max(last - first.at, pollMs);
    const counted = rows === first.rows ? rows : rows - first.rows;
    const perRecordUs = (before: number | undefined, after: number | undefined) =>
      before === undefined || after === undefined || counted === 0 ? undefined : ((after - before) * 1000) / counted;
    const row: AuditIngestRow = {
      records: options.records,
      stored,
      seconds: span / 1000,
      recordsPerSec: (counted * 1000) / span,
      nodeCpuPerRecordUs: perRecordUs(first.nodeMs, nodeMs),
      controlPlaneCpuPerRecordUs: perRecordUs(first.planeMs, planeMs),
      postgresCpuPerRecordUs: perRecordUs(postgresMs === undefined ? undefined : 0, postgresMs),
    };
    progress(
      `audit ingest: ${row.stored} of ${row.records} rows, ${Math.round(row.recordsPerSec)} records/s ` +
        `(node ${row.nodeCpuPerRecordUs?.toFixed(1)} µs, control plane ${row.controlPlaneCpuPerRecordUs?.toFixed(1)} ` +
        `µs, its PostgreSQL backends ${row.postgresCpuPerRecordUs?.toFixed(1) ?? '(not local)'} µs CPU a record)`,
    );
    return row;
  } finally {
    await node?.stop(5_000).catch(() => undefined);
    await client.end().catch(() => undefined);
    await plane.stop();
    rmSync(spoolDir, { recursive: true, force: true });
  }
}

/**
 * CPU milliseconds the control plane's backends used since `before` (their readings at the first committed
 * batch); a backend connected since counts from its start. Undefined when none was found (not local).
 */
async function postgresSpentMs(
  client: pg.Client,
  planePid: number,
  before: ReadonlyMap<number, number> | undefined,
): Promise<number | undefined> {
  if (before === undefined) return undefined;
  const pids = new Set([...before.keys(), ...(await postgresBackendsOf(client, planePid).catch(() => []))]);
  if (pids.size === 0) return undefined;
  let spent = 0;
  for (const pid of pids) {
    const now = processCpuMs(pid);
    // A backend gone meanwhile (the pool let it go) is left out: its last reading is lost with it.
    if (now !== undefined) spent += now - (before.get(pid) ?? 0);
  }
  return spent;
}

export function auditIngestTarget(row: AuditIngestRow | undefined): TargetCheck {
  const check: TargetCheck = {
    target: `audit ingest end to end (node spool → rows in PostgreSQL) >= ${AUDIT_INGEST_TARGET_PER_SEC} records/s`,
    unit: 'records/s',
  };
  if (row === undefined) return { ...check, why: 'not measured in this run' };
  if (row.stored < row.records) return { ...check, why: `only ${row.stored} of ${row.records} rows arrived` };
  check.measured = row.recordsPerSec;
  check.met = row.recordsPerSec >= AUDIT_INGEST_TARGET_PER_SEC;
  check.reference = `${row.records} records in ${row.seconds.toFixed(2)} s`;
  return check;
}
