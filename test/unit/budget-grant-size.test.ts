// The size of a node's budget grant (issue 15): a slice for a node starting or spending little; for
// a busy node as much again as it holds, up to half of what no node holds; whole dearest calls.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grantOf, sliceOf } from '../../control-plane/src/services/budgets.ts';

const PRICE = 1_000;

/** One node spending everything it is granted, alone among `nodes`: the sizes of its grants. */
function drain(amount: number, nodes: number, dearest: number): number[] {
  const lease = { amount_micros: amount, total_granted: 0, granted: 0, spent: 0, dearest };
  const grants: number[] = [];
  for (let more = grantOf(lease, nodes); more > 0; more = grantOf(lease, nodes)) {
    grants.push(more);
    lease.granted += more;
    lease.total_granted += more;
    lease.spent = lease.granted;
  }
  return grants;
}

test('a node that spends all it holds gets doubling grants, never more than half of what is left', () => {
  // 64 calls at 16 nodes: a slice is one call. One grant per call was 64 top-ups.
  const grants = drain(64 * PRICE, 16, PRICE);
  assert.equal(sliceOf(64 * PRICE, 16, PRICE), PRICE);
  assert.deepEqual(
    grants.map((grant) => grant / PRICE),
    [1, 1, 2, 4, 8, 16, 16, 8, 4, 2, 1, 1],
  );
  assert.equal(
    grants.reduce((sum, grant) => sum + grant, 0),
    64 * PRICE,
    'the whole budget, and no more',
  );
});

test('a node is not granted more while it holds a slice and a quarter of what it was granted', () => {
  const busy = { amount_micros: 1_000 * PRICE, total_granted: 400 * PRICE, granted: 400 * PRICE, dearest: PRICE };
  assert.equal(grantOf({ ...busy, spent: 300 * PRICE }, 4), 0, '100 calls left: a quarter');
  assert.equal(grantOf({ ...busy, spent: 301 * PRICE }, 4), 300 * PRICE, 'as much again, capped at half of 600');
  const fresh = { amount_micros: 1_000 * PRICE, total_granted: 0, granted: 0, spent: 0, dearest: PRICE };
  assert.equal(grantOf(fresh, 4), sliceOf(1_000 * PRICE, 4, PRICE), 'a first grant is a slice');
});

test('grants are whole dearest calls but for what is left at the end, and none when nothing is left', () => {
  const grants = drain(1_000_003, 3, 7_000);
  for (const grant of grants.slice(0, -1)) assert.equal(grant % 7_000, 0, `${grant}`);
  assert.equal(grants.at(-1), 1_000_003 % 7_000);
  const spent = { amount_micros: 10 * PRICE, total_granted: 10 * PRICE, granted: 10 * PRICE, spent: 10 * PRICE };
  assert.equal(grantOf({ ...spent, dearest: PRICE }, 1), 0);
});
