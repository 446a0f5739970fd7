import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { SnapshotBuilder } from '../../../control-plane/src/config/snapshot-builder.ts';
import { openDatabase } from '../../../control-plane/src/db/data-source.ts';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../../../control-plane/src/db/embedded.ts';
import { SecretBox, parseSecretKey, sealBearer, sealPairs } from '../../../control-plane/src/secrets/index.ts';
import { bumpRevision } from '../../../control-plane/src/services/config-change.ts';
import { ensureSessionKeys } from '../../../control-plane/src/services/settings.ts';
import { AppliedConfig } from '../../../data-plane/src/config/applied-config.ts';
import { ConnectResponse, type Snapshot, type SnapshotDelta } from '../../../proto/gen/portcullis/v1/config.ts';
import { percentile } from '../stats.ts';
import { adminQuery, freshSchemaName, measurableDatabases, type DatabaseKind } from './databases.ts';

/**
 * Snapshot build and apply at 1k, 10k and 100k keys, in this process (nothing else is measured
 * here). Build is the control plane's side: a whole build (what a control plane does at start, and
 * what a node connecting gets), and the build after one key is revoked (what every change costs:
 * only changed keys are read). Apply is the node's side: decoding and indexing a whole snapshot (a
 * node connecting) and decoding and applying a delta of one revoked key (every change). Keys are
 * inserted with SQL (GraphQL would take minutes at 100k); three HTTP upstreams with sealed
 * credentials make the build decrypt what a real one does.
 */

export interface SnapshotRow {
  database: DatabaseKind;
  keys: number;
  upstreams: number;
  /** Whole build (every key read), p50. */
  buildWholeMs: number;
  /** Build after one key was revoked (only changed keys read), p50. */
  buildChangeMs: number;
  /** Protobuf encoding of the whole snapshot (once per revision, shared by all nodes). */
  encodeWholeMs: number;
  wholeBytes: number;
  deltaBytes: number;
  /** Node: decode and index a whole snapshot, p50. */
  applyWholeMs: number;
  /** Node: decode and apply the delta of one revoked key, p50. */
  applyDeltaMs: number;
}

export interface SnapshotOptions {
  databases: readonly DatabaseKind[];
  postgresUrl: string;
  keyCounts: readonly number[];
  /** Repetitions of the whole build / whole apply (largest count: at most 2) and of the per-change ones. */
  wholeReps: number;
  changeReps: number;
}

const UPSTREAMS = 3;
const box = new SecretBox(parseSecretKey(randomBytes(32).toString('hex'), 'secretKey'));

async function timed<T>(fn: () => Promise<T> | T): Promise<[number, T]> {
  const started = performance.now();
  const value = await fn();
  return [performance.now() - started, value];
}

const p50 = (samples: number[]) =>
  percentile(
    [...samples].sort((a, b) => a - b),
    50,
  );

async function seedUpstreams(dataSource: DataSource): Promise<void> {
  await dataSource.transaction(async (manager) => {
    for (let i = 0; i < UPSTREAMS; i++) {
      const id = randomUUID();
      const headers = sealPairs(box, id, 'header', [
        { name: 'X-Api-Key', value: `key-${i}-${randomBytes(8).toString('hex')}` },
        { name: 'X-Team', value: 'bench' },
      ]);
      await manager.query(
        `INSERT INTO upstreams (id, name, transport, url, headers, bearer_token) VALUES ($1, $2, ` +
          `'STREAMABLE_HTTP', $3, $4::jsonb, $5)`,
        [
          id,
          `up${i}`,
          `https://upstream-${i}.example.com/mcp`,
          JSON.stringify(headers),
          sealBearer(box, id, `token-${i}`),
        ],
      );
    }
    await bumpRevision(manager);
  });
}

/** Adds keys (in one revision per 10,000) until `total` live keys exist. */
async function seedKeys(dataSource: DataSource, from: number, total: number): Promise<void> {
  for (let start = from; start < total; start += 10_000) {
    const end = Math.min(total, start + 10_000);
    await dataSource.transaction(async (manager) => {
      await manager.query(
        `INSERT INTO virtual_keys (name, prefix, secret_sha256, allowed_tools)
         SELECT 'bench-' || i, 'pcs_bench' || i, sha256(convert_to('bench-secret-' || i || '-' || $3, 'UTF8')),
                '["up0__*", "up1__search"]'::jsonb
         FROM generate_series($1::int, $2::int) AS i`,
        [start, end - 1, randomBytes(4).toString('hex')],
      );
      await bumpRevision(manager);
    });
  }
}

async function revokeOne(dataSource: DataSource): Promise<void> {
  await dataSource.transaction(async (manager) => {
    await manager.query(
      `UPDATE virtual_keys SET revoked_at = now() WHERE id = (SELECT id FROM virtual_keys WHERE revoked_at IS NULL ` +
        `LIMIT 1)`,
    );
    await bumpRevision(manager);
  });
}

async function measureOne(
  database: DatabaseKind,
  dataSource: DataSource,
  keys: number,
  options: SnapshotOptions,
  largest: boolean,
): Promise<SnapshotRow> {
  const wholeReps = largest ? Math.min(2, options.wholeReps) : options.wholeReps;
  const wholeBuilds: number[] = [];
  let whole: Snapshot | undefined;
  for (let i = 0; i < wholeReps; i++) {
    const [ms, built] = await timed(() => new SnapshotBuilder(dataSource, box).build());
    wholeBuilds.push(ms);
    whole = built.snapshot;
  }
  const [encodeWholeMs, wholeBytes] = await timed(() =>
    ConnectResponse.encode({ kind: { $case: 'snapshot', value: whole! } }).finish(),
  );

  const builder = new SnapshotBuilder(dataSource, box);
  const base = (await builder.build()).snapshot;
  const changeBuilds: number[] = [];
  let delta: SnapshotDelta | undefined;
  for (let i = 0; i < options.changeReps; i++) {
    await revokeOne(dataSource);
    const [ms, built] = await timed(() => builder.build());
    changeBuilds.push(ms);
    delta = built.delta;
  }
  if (!delta) throw new Error('no delta was built');

  const wholeApplies: number[] = [];
  let applied: AppliedConfig | undefined;
  for (let i = 0; i < wholeReps; i++) {
    const [ms, config] = await timed(() => AppliedConfig.fromSnapshot(decodeSnapshot(wholeBytes)));
    wholeApplies.push(ms);
    applied = config;
  }
  // A delta for the node's version: the last change, applied to the snapshot just before it.
  const nodeBase = AppliedConfig.fromSnapshot({ ...base, version: delta.baseVersion });
  const deltaBytes = ConnectResponse.encode({ kind: { $case: 'delta', value: delta } }).finish();
  const deltaApplies: number[] = [];
  for (let i = 0; i < options.changeReps * 4; i++) {
    const [ms, next] = await timed(() => nodeBase.applyDelta(decodeDelta(deltaBytes)));
    deltaApplies.push(ms);
    if (next.keyCount !== nodeBase.keyCount - delta.removedKeyIds.length + delta.upsertedKeys.length)
      throw new Error('the delta was not applied');
  }
  if (applied?.keyCount !== whole!.virtualKeys.length) throw new Error('the whole snapshot was not applied');

  return {
    database,
    keys,
    upstreams: whole!.upstreams.length,
    buildWholeMs: p50(wholeBuilds),
    buildChangeMs: p50(changeBuilds),
    encodeWholeMs,
    wholeBytes: wholeBytes.length,
    deltaBytes: deltaBytes.length,
    applyWholeMs: p50(wholeApplies),
    applyDeltaMs: p50(deltaApplies),
  };
}

/** What a node does with a message off the stream. */
function decodeSnapshot(bytes: Uint8Array): Snapshot {
  const message = ConnectResponse.decode(bytes);
  if (message.kind?.$case !== 'snapshot') throw new Error('not a snapshot');
  return message.kind.value;
}

function decodeDelta(bytes: Uint8Array): SnapshotDelta {
  const message = ConnectResponse.decode(bytes);
  if (message.kind?.$case !== 'delta') throw new Error('not a delta');
  return message.kind.value;
}

interface OpenedDatabase {
  dataSource: DataSource;
  close(): Promise<void>;
}

async function open(database: DatabaseKind, postgresUrl: string): Promise<OpenedDatabase> {
  if (database === 'embedded') {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-snapshots-'));
    let embedded: EmbeddedDatabase | undefined;
    try {
      embedded = await startEmbeddedDatabase({ dataDir: join(dir, 'pg') });
      const dataSource = await openDatabase({ ...embedded.connection, poolSize: 1, embedded: true });
      return {
        dataSource,
        async close() {
          await dataSource.destroy();
          await embedded!.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      await embedded?.close();
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }
  const schema = freshSchemaName('bench_snapshots');
  const admin = (sql: string) => adminQuery(postgresUrl, sql);
  await admin(`CREATE SCHEMA "${schema}"`);
  try {
    const dataSource = await openDatabase({ url: postgresUrl, schema, poolSize: 2, embedded: false });
    return {
      dataSource,
      async close() {
        await dataSource.destroy();
        await admin(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      },
    };
  } catch (error) {
    await admin(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    throw error;
  }
}

export async function measureSnapshots(
  options: SnapshotOptions,
  progress: (line: string) => void,
  note: (line: string) => void,
): Promise<SnapshotRow[]> {
  const rows: SnapshotRow[] = [];
  for (const database of await measurableDatabases(
    options.databases,
    options.postgresUrl,
    'snapshot build and apply',
    note,
  )) {
    let opened: OpenedDatabase;
    try {
      opened = await open(database, options.postgresUrl);
    } catch (error) {
      note(
        `snapshot build and apply (${database}) not measured: ` +
          `${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
      );
      continue;
    }
    try {
      await ensureSessionKeys(opened.dataSource);
      await seedUpstreams(opened.dataSource);
      let seeded = 0;
      const counts = [...options.keyCounts].sort((a, b) => a - b);
      for (const [i, keys] of counts.entries()) {
        const [seedMs] = await timed(() => seedKeys(opened.dataSource, seeded, keys));
        seeded = keys;
        const row = await measureOne(database, opened.dataSource, keys, options, i === counts.length - 1);
        rows.push(row);
        progress(
          `snapshots (${database}, ${keys} keys; seeded in ${(seedMs / 1000).toFixed(1)} s): build whole ` +
            `${row.buildWholeMs.toFixed(1)} ms, after a change ${row.buildChangeMs.toFixed(2)} ms; ` +
            `apply whole ${row.applyWholeMs.toFixed(1)} ms, delta ${row.applyDeltaMs.toFixed(3)} ms; ` +
            `${Math.round(row.wholeBytes / 1024)} KiB whole, ${row.deltaBytes} B delta`,
        );
        // Later counts build on these keys; the revoked ones do not count.
        seeded -= options.changeReps;
      }
    } catch (error) {
      note(`snapshot build and apply (${database}) failed: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      await opened.close();
    }
  }
  return rows;
}
