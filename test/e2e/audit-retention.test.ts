/**
 * The audit store on real PostgreSQL: inserts are idempotent by id, retention drops whole day
 * partitions (never rows), and the hash chain still verifies from the anchor it leaves.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { createLogger } from '../../common/src/index.ts';
import { openDatabase } from '../../control-plane/src/db/data-source.ts';
import { AuditStore, partitionName, type AuditRecordInput } from '../../control-plane/src/services/audit-store.ts';
import { verifyAuditChain } from '../../control-plane/src/services/audit-verify.ts';
import { AuditChainGaps1798400000000 } from '../../control-plane/src/db/migrations/1798400000000-audit-chain-gaps.ts';
import { auditRecord, chainProblems, DAY_MS } from '../support/audit-records.ts';
import { createTestSchema, type TestSchema } from '../support/database.ts';

const DAY = DAY_MS;

function record(time: number, tool: string): AuditRecordInput {
  return auditRecord(time, { tool });
}

describe('audit store', () => {
  let schema: TestSchema;
  let dataSource: DataSource;
  let store: AuditStore;

  before(async () => {
    schema = await createTestSchema('audit_store');
    dataSource = await openDatabase({ url: schema.url, schema: schema.name, poolSize: 2, embedded: false });
    store = new AuditStore(dataSource, createLogger({ level: 'silent' }));
  });
  after(async () => {
    await dataSource?.destroy();
    await schema?.drop();
  });

  it('stores a record shipped twice once', async () => {
    const once = record(Date.now(), 'twice');
    assert.equal(await store.insert([once, once]), 1);
    assert.equal(await store.insert([once]), 0);
    const rows = await schema.query(`SELECT id FROM audit_events WHERE tool = 'twice'`);
    assert.equal(rows.length, 1);
  });

  it('looks ids up first when told records may repeat: no failed insert, each record stored once', async () => {
    const batch = [record(Date.now(), 'repeat-a'), record(Date.now() + 1, 'repeat-b')];
    assert.equal(await store.insert(batch), 2);
    const failed = store.failedInserts;
    // A node's new stream starts with what it had in flight: told so, the store stores none of it again.
    assert.equal(await store.insert(batch, true), 0);
    assert.equal(store.failedInserts, failed, 'no failed insert');
    // Not told, the primary key catches the repeat: one failed insert, done again without the stored records.
    assert.equal(await store.insert([...batch, record(Date.now() + 2, 'repeat-c')]), 1);
    assert.equal(store.failedInserts, failed + 1);
    assert.equal((await schema.query(`SELECT id FROM audit_events WHERE tool LIKE 'repeat-%'`)).length, 3);
  });

  it('keeps every character through COPY and through the JSON insert (embedded database), chain intact', async () => {
    const awkward = 'tab\there\nnew line\r\\N back\\slash "quoted" \u00e9 \u{1F600} \\x00';
    for (const [label, via] of [
      ['copy', store],
      ['json', new AuditStore(dataSource, createLogger({ level: 'silent' }), undefined, false)],
    ] as const) {
      const tool = `awkward-${label}`;
      const r = { ...record(Date.now(), tool), node: awkward, arguments: awkward, result: '\\', subject: '\t' };
      r.error = { code: -32000, message: awkward };
      r.costMicros = 9_007_199_254_740_991;
      r.modelCostMicros = 12;
      assert.equal(await via.insert([r]), 1);
      const [row] = (await schema.query(
        `SELECT node_id, arguments, result, subject, error_code, error_message, cost_micros::text AS cost,
                model_cost_micros::text AS model FROM audit_events WHERE tool = $1`,
        [tool],
      )) as Array<Record<string, unknown>>;
      assert.deepEqual(row, {
        node_id: awkward,
        arguments: awkward,
        result: '\\',
        subject: '\t',
        error_code: -32000,
        error_message: awkward,
        cost: '9007199254740991',
        model: '12',
      });
    }
    const client = new pg.Client({ connectionString: schema.url, options: `-c search_path="${schema.name}"` });
    await client.connect();
    try {
      assert.deepEqual((await verifyAuditChain(client)).problems, []);
    } finally {
      await client.end();
    }
  });

  it('drops whole old days, keeps the rest, and the chain verifies from the new anchor', async () => {
    const now = Date.now();
    const old = [record(now - 10 * DAY, 'old'), record(now - 9 * DAY, 'old')];
    await store.insert(old);
    await store.insert([record(now - 1000, 'new')]);
    const oldPartitions = old.map((r) => partitionName(r.time));
    const dropped = await store.dropBefore(new Date(now - 3 * DAY));
    for (const name of oldPartitions) assert.ok(dropped.includes(name), `${name} dropped`);
    assert.equal((await schema.query(`SELECT id FROM audit_events WHERE tool = 'old'`)).length, 0);
    assert.equal((await schema.query(`SELECT id FROM audit_events WHERE tool = 'new'`)).length, 1);
    const client = new pg.Client({ connectionString: schema.url, options: `-c search_path="${schema.name}"` });
    await client.connect();
    try {
      const report = await verifyAuditChain(client);
      assert.deepEqual(report.problems, []);
      // Checked from the chain's start, across what retention dropped: every row kept is checked.
      const [kept] = await schema.query<{ n: string }>(`SELECT count(*)::text AS n FROM audit_events`);
      assert.equal(report.checked, Number(kept!.n));
      const gaps = await schema.query<{ to: string }>(`SELECT to_seq::text AS "to" FROM audit_chain_gaps`);
      assert.ok(gaps.length > 0, 'retention recorded the positions it dropped');
      // Append-only, like the rows: a gap changed or removed would hide rows deleted, or report false ones.
      for (const change of [
        'UPDATE audit_chain_gaps SET to_seq = to_seq + 1',
        'DELETE FROM audit_chain_gaps',
        'TRUNCATE audit_chain_gaps',
      ])
        await assert.rejects(schema.query(change), /audit_chain_gaps is append-only/, change);
    } finally {
      await client.end();
    }
  });

  it('anchors at the highest seq dropped, compared as numbers (10 after 9)', async () => {
    const [head] = await schema.query<{ seq: string }>(`SELECT seq::text AS seq FROM audit_chain_head`);
    const next = Number(head!.seq) + 1;
    // Up to the next power of ten: the dropped seqs go from n digits to n + 1.
    const count = 10 ** String(next).length - next + 1;
    const day = Math.floor(Date.now() / DAY) * DAY - 50 * DAY;
    await store.insert(Array.from({ length: count }, (_, i) => record(day + i, 'digits')));
    await store.dropBefore(new Date(day + DAY));
    const [anchor] = await schema.query<{ seq: string }>(`SELECT seq::text AS seq FROM audit_chain_anchor`);
    assert.equal(anchor?.seq, String(next + count - 1));
    assert.deepEqual(await chainProblems(schema), []);
  });

  it('never moves the anchor back when a later run drops a day whose rows were stored first', async () => {
    // Day 1's record arrives after day 2's (a node's backlog): its seq is the higher one.
    const day1 = Math.floor(Date.now() / DAY) * DAY - 30 * DAY;
    const day2 = day1 + DAY;
    await store.insert([record(day2 + 3_600_000, 'day2')]);
    await store.insert([record(day1 + 3_600_000, 'day1-late')]);
    assert.deepEqual(await store.dropBefore(new Date(day2)), [partitionName(day1)]);
    const [anchor] = await schema.query<{ seq: string }>(`SELECT seq::text AS seq FROM audit_chain_anchor`);
    assert.deepEqual(await store.dropBefore(new Date(day2 + DAY)), [partitionName(day2)]);
    assert.deepEqual(await schema.query(`SELECT seq::text AS seq FROM audit_chain_anchor`), [anchor]);
    assert.deepEqual(await chainProblems(schema), []);
  });

  it('checks rows kept below the highest seq dropped: an altered one, a deleted one, an inserted one', async () => {
    // Day 2's rows are stored, then a late record of day 1 (a node's backlog), then day 3's: dropping day 1
    // leaves day 2's rows below the anchor, which verification used to start after.
    const day1 = Math.floor(Date.now() / DAY) * DAY - 20 * DAY;
    const [day2, day3] = [day1 + DAY, day1 + 2 * DAY];
    await store.insert([0, 1, 2, 3].map((i) => record(day2 + 3_600_000 + i, 'kept-below')));
    await store.insert([record(day1 + 3_600_000, 'late')]);
    await store.insert([record(day3 + 3_600_000, 'after')]);
    assert.deepEqual(await store.dropBefore(new Date(day2)), [partitionName(day1)]);
    const below = await schema.query<{ id: string; seq: string }>(
      `SELECT id::text AS id, seq::text AS seq FROM audit_events WHERE tool = 'kept-below' ORDER BY seq`,
    );
    const [anchor] = await schema.query<{ seq: string }>(`SELECT seq::text AS seq FROM audit_chain_anchor`);
    assert.ok(
      below.every((r) => BigInt(r.seq) < BigInt(anchor!.seq)),
      'the rows are kept below the anchor',
    );
    assert.deepEqual(await chainProblems(schema), [], 'intact across the dropped late record');

    const [altered, deleted] = [below[1]!, below[2]!];
    const inserted = '0190a000-0000-7000-8000-0000000000b1';
    // As the table owner, bypassing the append-only guard.
    await schema.query(`ALTER TABLE audit_events DISABLE TRIGGER USER`);
    await schema.query(`UPDATE audit_events SET arguments = '{"forged":true}' WHERE id = $1`, [altered.id]);
    await schema.query(`DELETE FROM audit_events WHERE id = $1`, [deleted.id]);
    // A row put where retention dropped the late record: a position the chain no longer holds.
    await schema.query(
      `INSERT INTO audit_events (id, time, seq, prev_id, hash, node_id, kind, status, latency_us, gateway_latency_us)
       SELECT $1, time, $2, prev_id, hash, node_id, kind, status, latency_us, gateway_latency_us
         FROM audit_events WHERE id = $3`,
      [inserted, anchor!.seq, below[3]!.id],
    );
    await schema.query(`ALTER TABLE audit_events ENABLE TRIGGER USER`);
    assert.deepEqual(
      (await chainProblems(schema)).map((p) => `${p.problem} ${p.seq} ${p.id}`).sort(),
      [
        `altered ${altered.seq} ${altered.id}`,
        `inserted ${anchor!.seq} ${inserted}`,
        `missing ${deleted.seq} ${deleted.id}`,
      ].sort(),
    );
    // Put back as it was for the tests after this one.
    await schema.query(`ALTER TABLE audit_events DISABLE TRIGGER USER`);
    await schema.query(`DELETE FROM audit_events WHERE id = $1`, [inserted]);
    await schema.query(`ALTER TABLE audit_events ENABLE TRIGGER USER`);
  });

  it('creates again a partition whose first transaction rolled back', async () => {
    const day = Math.floor(Date.now() / DAY) * DAY - 40 * DAY;
    // PostgreSQL text cannot hold NUL: the COPY fails after the day's partition was created in the transaction.
    await assert.rejects(store.insert([record(day + 1000, 'rolled-back')].map((r) => ({ ...r, arguments: '\u0000' }))));
    assert.equal(await store.insert([record(day + 2000, 'after-rollback')]), 1);
    assert.equal((await schema.query(`SELECT id FROM audit_events WHERE tool = 'after-rollback'`)).length, 1);
  });

  it('where days were dropped before gaps were recorded, rows kept below the anchor are not reported', async () => {
    // As the migration found such a database: an anchor, and no gaps (the table made again by its own up()).
    const migration = new AuditChainGaps1798400000000();
    const runner = dataSource.createQueryRunner();
    try {
      await migration.down(runner);
      await migration.up(runner);
    } finally {
      await runner.release();
    }
    const [anchor] = await schema.query<{ seq: string }>(`SELECT seq::text AS seq FROM audit_chain_anchor`);
    assert.deepEqual(
      await schema.query(`SELECT from_seq::text AS "from", to_seq::text AS "to", opaque FROM audit_chain_gaps`),
      [{ from: '1', to: anchor!.seq, opaque: true }],
    );
    // Rows kept below the anchor are not checked (nothing recorded says what was dropped around them), and not
    // reported either; the rows after it still are.
    assert.deepEqual(await chainProblems(schema), []);
    const [below] = await schema.query<{ id: string }>(
      `SELECT id::text AS id FROM audit_events WHERE tool = 'kept-below' ORDER BY seq LIMIT 1`,
    );
    const [after] = await schema.query<{ id: string; seq: string }>(
      `SELECT id::text AS id, seq::text AS seq FROM audit_events WHERE tool = 'after'`,
    );
    await schema.query(`ALTER TABLE audit_events DISABLE TRIGGER USER`);
    await schema.query(`UPDATE audit_events SET arguments = '{"forged":true}' WHERE id = ANY($1::uuid[])`, [
      [below!.id, after!.id],
    ]);
    await schema.query(`ALTER TABLE audit_events ENABLE TRIGGER USER`);
    assert.deepEqual(await chainProblems(schema), [{ id: after!.id, seq: after!.seq, problem: 'altered' }]);
  });
});
