import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { newAuditRecord } from '../../data-plane/src/audit/audit-record.ts';
import type { BudgetLease } from '../../proto/gen/portcullis/v1/config.ts';
import { eventually } from '../support/eventually.ts';
import { useTestEnv, type TestEnv } from '../support/test-env.ts';

/**
 * Spending reconciled from the audit trail (issue 15). A config stream driven by hand stands for a
 * node that was killed after its calls and before its spend report: it ships only their audit
 * records, as a restarted node does from its spool, and never reports what it spent.
 */
const PRICE = 1_000;
const BUDGETS = `{ budgets { id spentMicros remainingMicros } }`;

describe('budgets reconciled from audit records', () => {
  let env: TestEnv;

  useTestEnv({ schemaPrefix: 'budget_reconcile' }, (started) => (env = started));

  test('spending a node shipped in audit records but never reported counts against the budget', async () => {
    const { createTeam } = await env.gqlOk<{ createTeam: { id: string } }>(
      `mutation { createTeam(input: { name: "audited" }) { id } }`,
    );
    const { setBudget } = await env.gqlOk<{ setBudget: { id: string } }>(
      `mutation ($input: SetBudgetInput!) { setBudget(input: $input) { id } }`,
      { input: { scope: 'TEAM', ownerId: createTeam.id, period: 'DAY', amountMicros: 10 * PRICE } },
    );
    const key = await env.createKey({ name: 'audited', teamId: createTeam.id });
    const node = await env.connectConfigStream('killed-node');

    const records = [0, 1, 2].map(() => {
      const record = newAuditRecord('killed-node', 'tool_call', 'ok');
      Object.assign(record, { keyId: key.id, teamId: createTeam.id, upstream: 'ev', tool: 'ev__echo' });
      record.costMicros = PRICE;
      return JSON.stringify(record);
    });
    // As a node before records_ndjson sends them: one string per record.
    node.send({
      kind: { $case: 'audit', value: { batchId: 1, recordsJson: records, recordsNdjson: Buffer.alloc(0) } },
    });

    let spent = 0;
    await eventually('the budget counts the audited spending', async () => {
      const { budgets } = await env.gqlOk<{ budgets: { id: string; spentMicros: number }[] }>(BUDGETS);
      spent = budgets.find((budget) => budget.id === setBudget.id)?.spentMicros ?? 0;
      return spent === 3 * PRICE;
    });
    const lease = (): BudgetLease | undefined =>
      node.received
        .flatMap((message) => (message.kind?.$case === 'leases' ? message.kind.value.leases : []))
        .findLast((entry) => entry.budgetId === setBudget.id);
    await eventually("the node's lease says what it spent", () => lease()?.spentMicros === 3 * PRICE);
    assert.ok(lease()!.grantedMicros >= 3 * PRICE, JSON.stringify(lease()));
  });
});
