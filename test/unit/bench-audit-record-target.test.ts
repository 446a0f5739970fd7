import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditIngestRow } from '../../bench/src/scenarios/audit-ingest.ts';
import { auditRecordTarget, type AuditRecordStepRow } from '../../bench/src/scenarios/audit-record.ts';

const step = (addedUs: number): AuditRecordStepRow => ({
  calls: 1000,
  rounds: 4,
  onUs: 5,
  offUs: 5 - addedUs,
  addedUs,
  addedMinUs: addedUs,
  addedMaxUs: addedUs,
});
const ingest = (nodeCpuPerRecordUs: number | undefined): AuditIngestRow => ({
  records: 10,
  stored: 10,
  seconds: 1,
  recordsPerSec: 10,
  nodeCpuPerRecordUs,
  controlPlaneCpuPerRecordUs: 1,
  postgresCpuPerRecordUs: undefined,
});

test("recording's own work is the record step plus the node CPU per record shipped, against 5 µs", () => {
  const met = auditRecordTarget(step(2), ingest(2.5));
  assert.equal(met.measured, 4.5);
  assert.equal(met.met, true);
  assert.match(met.reference ?? '', /record step 2\.00 µs \+ shipping 2\.50 µs/);
  const missed = auditRecordTarget(step(3), ingest(2.5));
  assert.equal(missed.measured, 5.5);
  assert.equal(missed.met, false);
});

test('without either part the target says what was not measured, and gives no figure', () => {
  const noStep = auditRecordTarget(undefined, ingest(2));
  assert.equal(noStep.measured, undefined);
  assert.match(noStep.why ?? '', /not measured/);
  const noShipping = auditRecordTarget(step(2), ingest(undefined));
  assert.equal(noShipping.measured, undefined);
  assert.match(noShipping.why ?? '', /shipping/);
  assert.match(auditRecordTarget(step(2), undefined).why ?? '', /shipping/);
});
