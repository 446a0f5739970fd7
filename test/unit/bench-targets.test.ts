import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkTargets } from '../../bench/src/report/targets.ts';
import type { PropagationRow } from '../../bench/src/scenarios/propagation.ts';

function row(processes: number, p99Ms: number, kind: PropagationRow['kind'] = 'revocation'): PropagationRow {
  return {
    kind,
    database: 'embedded',
    nodes: 16,
    processes,
    keysConfigured: 10_000,
    rounds: 100,
    p50Ms: p99Ms / 2,
    p99Ms,
    maxMs: p99Ms,
    mutationP50Ms: 1,
    firstNodeP50Ms: 1,
    samplesMs: [],
  };
}

test(`bench: the 16-node revocation target reads the row with the fewest processes and shows the one-process-a-node \
p99 beside it`, () => {
  const [embedded] = checkTargets([], undefined, [row(16, 33.6), row(4, 23.3)]).filter(
    (t) => t.target.includes('revocation') && t.target.includes('embedded'),
  );
  assert.equal(embedded!.measured, 23.3);
  assert.equal(embedded!.met, true);
  assert.match(embedded!.target, /4 nodes to a process/);
  assert.equal(embedded!.reference, 'each node its own process: p99 33.6 ms');
  const [alone] = checkTargets([], undefined, [row(16, 33.6)]).filter(
    (t) => t.target.includes('revocation') && t.target.includes('embedded'),
  );
  assert.equal(alone!.measured, 33.6);
  assert.equal(alone!.met, false);
  assert.match(alone!.target, /each node its own process/);
  assert.equal(alone!.reference, undefined);
});

test('bench: rotation and budget-exhaustion rows do not stand in for the revocation target', () => {
  const [embedded] = checkTargets([], undefined, [row(4, 90, 'rotation'), row(4, 80, 'budget-exhaustion')]).filter(
    (t) => t.target.includes('revocation') && t.target.includes('embedded'),
  );
  assert.equal(embedded!.measured, undefined);
});
