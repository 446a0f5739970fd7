import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { newAuditRecord, uuidV7 } from '../../data-plane/src/audit/audit-record.ts';
import { eventually } from '../support/eventually.ts';
import { useTestEnv, type TestEnv } from '../support/test-env.ts';

/**
 * Budgets read for a past period (issue 15): the spending of each period is kept in its leases, so
 * `budgets(at:)` shows what a period spent after it ended. A config stream driven by hand ships audit
 * records of calls made days ago (as a node does from its spool after an outage); reconciliation files
 * them under the periods of their time.
 */
const PRICE = 1_000;
const DAY_MS = 24 * 60 * 60 * 1000;
const BUDGETS = `query ($at: DateTime) {
  budgets(at: $at) { id period periodStart periodEnd amountMicros spentMicros remainingMicros } }`;

interface BudgetRow {
  id: string;
  period: string;
  periodStart: string | null;
  periodEnd: string | null;
  amountMicros: number;
  spentMicros: number;
  remainingMicros: number;
}

/** 00:00 UTC of the day `days` before today. */
function dayStart(days: number): Date {
  const today = new Date();
  return new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate()) - days * DAY_MS);
}

describe('budgets of past periods', () => {
  let env: TestEnv;

  useTestEnv({ schemaPrefix: 'budget_history' }, (started) => (env = started));

  async function budgetAt(id: string, at?: Date): Promise<BudgetRow> {
    const { budgets } = await env.gqlOk<{ budgets: BudgetRow[] }>(BUDGETS, { at: at?.toISOString() ?? null });
    const found = budgets.find((budget) => budget.id === id);
    assert.ok(found, `budget ${id} in ${JSON.stringify(budgets)}`);
    return found;
  }

  test('a daily budget read at a time three days ago shows that day, with what was spent on it', async () => {
    const { createTeam } = await env.gqlOk<{ createTeam: { id: string } }>(
      `mutation { createTeam(input: { name: "history" }) { id } }`,
    );
    const { setBudget } = await env.gqlOk<{ setBudget: { id: string } }>(
      `mutation ($input: SetBudgetInput!) { setBudget(input: $input) { id } }`,
      { input: { scope: 'TEAM', ownerId: createTeam.id, period: 'DAY', amountMicros: 10 * PRICE } },
    );
    const key = await env.createKey({ name: 'history', teamId: createTeam.id });
    const node = await env.connectConfigStream('spooling-node');
    // Three calls at noon three days ago, two at noon two days ago.
    const calls = [3, 3, 3, 2, 2].map((days) => {
      const time = dayStart(days).getTime() + DAY_MS / 2;
      const record = newAuditRecord('spooling-node', 'tool_call', 'ok', { id: uuidV7(time), time });
      Object.assign(record, { keyId: key.id, teamId: createTeam.id, upstream: 'ev', tool: 'ev__echo' });
      record.costMicros = PRICE;
      return JSON.stringify(record);
    });
    node.send({ kind: { $case: 'audit', value: { batchId: 1, recordsJson: calls, recordsNdjson: Buffer.alloc(0) } } });

    const threeDaysAgo = new Date(dayStart(3).getTime() + 5 * 60 * 60 * 1000);
    const past = await eventually('the records of three days ago counted in their day', async () => {
      const row = await budgetAt(setBudget.id, threeDaysAgo);
      return row.spentMicros === 3 * PRICE ? row : undefined;
    });
    assert.deepEqual(
      { start: past.periodStart, end: past.periodEnd, remaining: past.remainingMicros, amount: past.amountMicros },
      {
        start: dayStart(3).toISOString(),
        end: dayStart(2).toISOString(),
        remaining: 7 * PRICE,
        amount: 10 * PRICE,
      },
    );
    const dayAfter = await budgetAt(setBudget.id, new Date(dayStart(2).getTime() + 1));
    assert.equal(dayAfter.spentMicros, 2 * PRICE);
    assert.equal(dayAfter.periodStart, dayStart(2).toISOString());
    const today = await budgetAt(setBudget.id);
    assert.equal(today.spentMicros, 0, 'nothing spent today');
    assert.equal(today.periodStart, dayStart(0).toISOString());
    const tomorrow = await budgetAt(setBudget.id, new Date(dayStart(-1).getTime() + 1));
    assert.equal(tomorrow.spentMicros, 0);
    assert.equal(tomorrow.remainingMicros, 10 * PRICE);
  });

  test('a time that is not ISO 8601 is refused naming the format', async () => {
    const response = await env.gql(BUDGETS, { at: 'last tuesday' });
    assert.match(response.errors?.[0]?.message ?? '', /DateTime must be an ISO 8601 string/);
  });
});
