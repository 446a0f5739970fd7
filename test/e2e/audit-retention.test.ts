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
      assert.notEqual(report.fromSeq, '0');
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

  it('creates again a partition whose first transaction rolled back', async () => {
    const day = Math.floor(Date.now() / DAY) * DAY - 40 * DAY;
    // PostgreSQL text cannot hold NUL: the COPY fails after the day's partition was created in the transaction.
    await assert.rejects(store.insert([record(day + 1000, 'rolled-back')].map((r) => ({ ...r, arguments: '\u0000' }))));
    assert.equal(await store.insert([record(day + 2000, 'after-rollback')]), 1);
    assert.equal((await schema.query(`SELECT id FROM audit_events WHERE tool = 'after-rollback'`)).length, 1);
  });
});
