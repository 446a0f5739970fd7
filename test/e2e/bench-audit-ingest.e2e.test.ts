import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AUDIT_INGEST_TARGET_PER_SEC,
  auditIngestTarget,
  measureAuditIngest,
  type AuditIngestRow,
} from '../../bench/src/scenarios/audit-ingest.ts';
import { killAllSync } from '../../bench/src/processes.ts';
import { TEST_DATABASE_URL } from '../support/database.ts';

/** The bench row "audit ingest end to end", on a small count: real control plane, node and PostgreSQL. */
describe('bench: audit ingest end to end', () => {
  it('ships every record of a node spool into PostgreSQL and reports the rate and CPU per record', async () => {
    const notes: string[] = [];
    let row: AuditIngestRow | undefined;
    try {
      row = await measureAuditIngest(
        { postgresUrl: TEST_DATABASE_URL, records: 1_500, timeoutMs: 60_000 },
        () => undefined,
        (line) => notes.push(line),
      );
    } finally {
      killAllSync();
    }
    assert.ok(row, `measured (${notes.join('; ')})`);
    assert.equal(row.records, 1_500);
    assert.equal(row.stored, 1_500, 'every record is a row');
    assert.ok(row.seconds > 0 && row.recordsPerSec > 0, `a rate (${row.recordsPerSec}/s over ${row.seconds} s)`);
    // Read from /proc over the span the rows arrived in: 0 when they all came in one batch, never missing.
    assert.ok((row.nodeCpuPerRecordUs ?? -1) >= 0 && (row.controlPlaneCpuPerRecordUs ?? -1) >= 0, 'CPU per record');
    // The test server runs on this machine: its backends serving the control plane are found and read.
    if (['127.0.0.1', 'localhost', '[::1]'].includes(new URL(TEST_DATABASE_URL).hostname))
      assert.ok((row.postgresCpuPerRecordUs ?? -1) >= 0, `PostgreSQL CPU per record (${row.postgresCpuPerRecordUs})`);
    const check = auditIngestTarget(row);
    assert.equal(check.measured, row.recordsPerSec);
    assert.equal(check.met, row.recordsPerSec >= AUDIT_INGEST_TARGET_PER_SEC);
  });

  it('reads the target as met, missed, or not measured when rows are missing', () => {
    const row = (recordsPerSec: number, stored = 1_000): AuditIngestRow => ({
      records: 1_000,
      stored,
      seconds: 1_000 / recordsPerSec,
      recordsPerSec,
      nodeCpuPerRecordUs: 5,
      controlPlaneCpuPerRecordUs: 20,
      postgresCpuPerRecordUs: 10,
    });
    assert.equal(auditIngestTarget(row(31_000)).met, true);
    assert.equal(auditIngestTarget(row(29_000)).met, false);
    const missing = auditIngestTarget(row(50_000, 999));
    assert.equal(missing.measured, undefined);
    assert.match(missing.why ?? '', /only 999 of 1000 rows arrived/);
    assert.match(auditIngestTarget(undefined).why ?? '', /not measured/);
  });
});
