import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { test } from 'node:test';
import { BudgetLedger, LOW_LEASE_RESEND_MS, isReservation } from '../../data-plane/src/policy/budget-ledger.ts';
import type { BudgetSpend } from '../../proto/gen/portcullis/v1/config.ts';

const PRICE = 1_000;
const OWNERS = ['key:k1'];
const BUDGETED = new Set(OWNERS);

/** Waits for the ledger's report timer (0 ms when a lease runs low). */
async function reportsSettled(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 5));
  await turn();
}

test(`calls refused while a top-up is on its way send one spend report, not one each, until \
${LOW_LEASE_RESEND_MS} ms pass`, async () => {
  const reports: BudgetSpend[][] = [];
  let now = 1_000_000;
  const ledger = new BudgetLedger(
    (entries) => reports.push(entries),
    () => now,
  );
  ledger.apply([
    {
      budgetId: 'b1',
      scope: 'key',
      ownerId: 'k1',
      periodStartMs: 0,
      grantedMicros: PRICE,
      periodEndMs: 0,
      ungrantedMicros: 10 * PRICE,
      spentMicros: 0,
    },
  ]);
  const held = ledger.reserve(OWNERS, BUDGETED, PRICE);
  assert.ok(held !== undefined && isReservation(held));
  ledger.settle(held, PRICE);
  await reportsSettled();
  assert.deepEqual(reports, [[{ budgetId: 'b1', periodStartMs: 0, spentMicros: PRICE }]], 'the low lease is reported');

  for (let i = 0; i < 50; i++) {
    const refusal = ledger.reserve(OWNERS, BUDGETED, PRICE);
    assert.ok(refusal !== undefined && !isReservation(refusal));
    assert.equal(refusal.exhausted, false, 'a top-up may come');
    await reportsSettled();
  }
  assert.equal(reports.length, 1, 'fifty refusals within the resend window add no report');

  now += LOW_LEASE_RESEND_MS;
  ledger.reserve(OWNERS, BUDGETED, PRICE);
  await reportsSettled();
  assert.equal(reports.length, 2, 'asked again once the window passed (a report may have been lost)');
  ledger.close();
});
