/** `AuditQueries.bySeqRange` (another replica's committed batch, read back for subscribers) on real PostgreSQL. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DataSource } from 'typeorm';
import { createLogger } from '../../common/src/index.ts';
import { openDatabase } from '../../control-plane/src/db/data-source.ts';
import { AuditQueries } from '../../control-plane/src/services/audit-queries.ts';
import { AuditStore } from '../../control-plane/src/services/audit-store.ts';
import { auditRecord } from '../support/audit-records.ts';
import { createTestSchema, type TestSchema } from '../support/database.ts';

describe('audit seq range', () => {
  let schema: TestSchema;
  let dataSource: DataSource;

  before(async () => {
    schema = await createTestSchema('audit_seq_range');
    dataSource = await openDatabase({ url: schema.url, schema: schema.name, poolSize: 2, embedded: false });
  });
  after(async () => {
    await dataSource?.destroy();
    await schema?.drop();
  });

  it('reads the rows in seq order across 9 -> 10 (not as text, where 10 sorts before 9)', async () => {
    const store = new AuditStore(dataSource, createLogger({ level: 'silent' }));
    const start = Date.now() - 60_000;
    assert.equal(await store.insert(Array.from({ length: 12 }, (_, i) => auditRecord(start + i))), 12);
    const seqs = (await new AuditQueries(dataSource).bySeqRange('8', '11')).map((e) => e.seq);
    assert.deepEqual(seqs, ['8', '9', '10', '11']);
  });
});
