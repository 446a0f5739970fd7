/**
 * The audit table's keys on real PostgreSQL (migration 1798300000000): the primary key is (time, id), the
 * status index holds only the rows that are not ok, and a batch sent again (partly stored already) is
 * stored once per id whatever its size, the chain intact.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { createLogger } from '../../common/src/index.ts';
import { openDatabase } from '../../control-plane/src/db/data-source.ts';
import { AuditFeed } from '../../control-plane/src/services/audit-feed.ts';
import type { AuditEventView } from '../../control-plane/src/services/audit-queries.ts';
import { AuditStore, COPY_CHUNK_ROWS } from '../../control-plane/src/services/audit-store.ts';
import { auditRecord, chainProblems } from '../support/audit-records.ts';
import { createTestSchema, type TestSchema } from '../support/database.ts';

describe('audit indexes', () => {
  let schema: TestSchema;
  let dataSource: DataSource;
  let store: AuditStore;
  const fed: AuditEventView[] = [];

  before(async () => {
    schema = await createTestSchema('audit_indexes');
    dataSource = await openDatabase({ url: schema.url, schema: schema.name, poolSize: 2, embedded: false });
    const feed = new AuditFeed();
    feed.onStored((event) => fed.push(event));
    store = new AuditStore(dataSource, createLogger({ level: 'silent' }), feed);
  });
  after(async () => {
    await dataSource?.destroy();
    await schema?.drop();
  });

  it('keys the table by (time, id), without the index that held the same keys', async () => {
    const [key] = await schema.query<{ columns: string[] }>(
      `SELECT array_agg(a.attname::text ORDER BY k.n) AS columns
         FROM pg_constraint c CROSS JOIN unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
        WHERE c.conrelid = 'audit_events'::regclass AND c.contype = 'p'`,
    );
    assert.deepEqual(key?.columns, ['time', 'id']);
    const indexes = await schema.query<{ name: string }>(
      `SELECT indexname AS name FROM pg_indexes WHERE tablename = 'audit_events' AND schemaname = current_schema()`,
    );
    assert.ok(!indexes.some((i) => i.name === 'audit_events_time'), JSON.stringify(indexes));
  });

  it('indexes only the statuses other than ok, and a status filter reads that index', async () => {
    const [index] = await schema.query<{ predicate: string }>(
      `SELECT pg_get_expr(indpred, indrelid) AS predicate FROM pg_index
        WHERE indexrelid = 'audit_events_status'::regclass`,
    );
    assert.equal(index?.predicate, "(status <> 'ok'::text)");
    const now = Date.now();
    await store.insert([
      auditRecord(now, { status: 'error', tool: 'status-filter' }),
      auditRecord(now + 1, { tool: 'status-filter' }),
    ]);
    const client = new pg.Client({ connectionString: schema.url, options: `-c search_path="${schema.name}"` });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL enable_seqscan = off');
      // As `auditEvents` asks it (AuditQueries.events: `status = $n`, one-off plans with the value).
      const plan = await client.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN SELECT id FROM audit_events WHERE status = $1 ORDER BY time DESC, id DESC LIMIT 10`,
        ['error'],
      );
      const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
      assert.match(text, /audit_events_\d{8}_status_time_idx/, text);
      await client.query('ROLLBACK');
    } finally {
      await client.end();
    }
  });

  it('stores a batch sent again with new records once per id, over several COPY chunks, chain intact', async () => {
    const start = Date.now() - 60_000;
    const first = Array.from({ length: 2 * COPY_CHUNK_ROWS + 1 }, (_, i) => auditRecord(start + i, { tool: 'resend' }));
    assert.equal(await store.insert(first), first.length);
    fed.length = 0;
    const late = [auditRecord(start + 5_000, { tool: 'resend' }), auditRecord(start + 5_001, { tool: 'resend' })];
    // The node sends its window again after an outage: the stored records, the new ones, a duplicate inside.
    assert.equal(await store.insert([...first.slice(COPY_CHUNK_ROWS), late[0]!, ...first, late[1]!, late[0]!]), 2);
    assert.deepEqual(fed.map((e) => e.id).sort(), late.map((r) => r.id).sort());
    const [count] = await schema.query<{ n: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids FROM audit_events WHERE tool = 'resend'`,
    );
    assert.deepEqual(count, { n: first.length + 2, ids: first.length + 2 });
    assert.equal(await store.insert(first), 0);
    // The JSON insert (the embedded database's) finds the stored ones the same way.
    const json = new AuditStore(dataSource, createLogger({ level: 'silent' }), undefined, false);
    assert.equal(await json.insert([first[0]!, auditRecord(start + 6_000, { tool: 'resend' }), first[1]!]), 1);
    assert.deepEqual(await chainProblems(schema), []);
  });
});
