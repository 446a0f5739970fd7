import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { describe, it } from 'node:test';
import { canPin } from '../../bench/src/node-ab.ts';
import { killAllSync } from '../../bench/src/processes.ts';
import { auditCostTarget, measureAuditCost, type AuditCostRow } from '../../bench/src/scenarios/audit-cost.ts';
import { TEST_DATABASE_URL } from '../support/database.ts';

/** This process's CPU affinity as `taskset` prints it (the hex mask). */
const affinity = (): string => execFileSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' }).trim();

/** The bench section "audit recording in service", on a few short passes: real nodes, control planes, PostgreSQL. */
describe('bench: audit recording in service (recording on vs off, paced passes side by side)', () => {
  it('measures both nodes in pairs, reads the target from the median, and gives the CPUs back', async () => {
    const pin = canPin();
    const before = pin ? affinity() : '';
    let row: AuditCostRow;
    try {
      row = await measureAuditCost(
        { pairs: 2, calls: 400, ratePerSec: 2_000, postgresUrl: TEST_DATABASE_URL, pin },
        () => undefined,
      );
    } finally {
      killAllSync();
    }
    assert.equal(row.pairs, 2);
    assert.equal(row.pinned, pin);
    assert.equal(row.database, 'postgres');
    assert.ok(row.onUs > 0 && row.offUs > 0, `CPU per call of both nodes (${row.onUs}, ${row.offUs})`);
    assert.ok(row.addedQ1Us <= row.addedUs && row.addedUs <= row.addedQ3Us, 'the median between its quartiles');
    assert.ok(Number.isFinite(row.addedMainUs) && Number.isFinite(row.addedOtherUs), 'split by thread');
    const check = auditCostTarget(row);
    assert.equal(check.measured, row.addedUs);
    assert.match(
      check.reference!,
      /main thread -?\d+\.\d µs, other threads -?\d+\.\d µs; 2 pairs of 400 calls at 2000\/s each/,
    );
    // Pinned, this process ran on the other CPUs with the control planes; what it starts next may use them all.
    if (pin) assert.equal(affinity(), before, `affinity restored (${cpus().length} CPUs)`);
  });

  it('reads the target as met, missed, inconclusive when recording measured cheaper, or not measured', () => {
    const row = (addedUs: number): AuditCostRow => ({
      pairs: 10,
      callsPerPass: 16_000,
      ratePerSec: 4_000,
      pinned: true,
      database: 'postgres',
      onUs: 120 + addedUs,
      offUs: 120,
      addedUs,
      addedQ1Us: addedUs - 2,
      addedQ3Us: addedUs + 2,
      addedWholeRunUs: addedUs,
      addedMainUs: addedUs - 1,
      addedOtherUs: 1,
    });
    assert.equal(auditCostTarget(row(3.5)).met, true);
    assert.equal(auditCostTarget(row(11.6)).met, false);
    const cheaper = auditCostTarget(row(-4));
    assert.equal(cheaper.met, undefined);
    assert.equal(cheaper.measured, -4);
    assert.match(cheaper.why!, /recording on measured cheaper than off/);
    const missing = auditCostTarget(undefined);
    assert.equal(missing.measured, undefined);
    assert.match(missing.why!, /not measured/);
  });
});
