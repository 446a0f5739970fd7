import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gapFinder, type RetentionGap } from '../../control-plane/src/services/audit-verify.ts';

const gap = (from: number, to: number, opaque = false): RetentionGap => ({
  from: BigInt(from),
  to: BigInt(to),
  lastId: `id-${to}`,
  lastHash: `hash-${to}`,
  opaque,
});

test('the gap at a position is the one reaching furthest, overlaps included', () => {
  // An opaque gap from a migrated anchor, a later run inside it and one reaching past it, then two apart.
  const gaps = [gap(1, 50, true), gap(10, 20), gap(40, 70), gap(80, 80), gap(90, 99)];
  const at = gapFinder(gaps);
  const found = (seq: number) => {
    const g = at(BigInt(seq));
    return g === undefined ? undefined : `${g.from}-${g.to}`;
  };
  assert.equal(found(0), undefined);
  assert.equal(found(1), '1-50');
  assert.equal(found(15), '1-50', 'inside both: the opaque gap reaches further');
  assert.equal(found(45), '40-70', 'inside both: the later run reaches further');
  assert.equal(found(70), '40-70');
  assert.equal(found(71), undefined);
  assert.equal(found(80), '80-80');
  assert.equal(found(85), undefined);
  assert.equal(found(99), '90-99');
  assert.equal(found(100), undefined);
  assert.equal(gapFinder([])(5n), undefined);
});
