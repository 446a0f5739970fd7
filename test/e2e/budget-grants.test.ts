// Budget grants against the real PostgreSQL (issue 15): a grant locks only the budgets it tops up,
// a refresh that changes nothing locks none, reconciling locks only the budgets its records charge,
// and concurrent grants never lease more than the budget.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { createLogger } from '../../common/src/index.ts';
import { InProcessChangeBus } from '../../control-plane/src/config/change-bus.ts';
import { openDatabase } from '../../control-plane/src/db/data-source.ts';
import { AuditStore, auditRecordSchema } from '../../control-plane/src/services/audit-store.ts';
import { BudgetService } from '../../control-plane/src/services/budgets.ts';
import { newAuditRecord } from '../../data-plane/src/audit/audit-record.ts';
import type { BudgetLease } from '../../proto/gen/portcullis/v1/config.ts';
import { createTestSchema, type TestSchema } from '../support/database.ts';

/** Fails when `work` has not settled within `ms` (a grant stuck behind a lock it should not take). */
async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('budget grants (real PostgreSQL)', () => {
  let schema: TestSchema;
  let dataSource: DataSource;
  let budgets: BudgetService;
  let locker: pg.Client;

  before(async () => {
    schema = await createTestSchema('budget_grants');
    dataSource = await openDatabase({ url: schema.url, schema: schema.name, poolSize: 4, embedded: false });
    budgets = new BudgetService({ dataSource, changes: new InProcessChangeBus() });
    locker = new pg.Client({ connectionString: schema.url, options: `-c search_path="${schema.name}"` });
    await locker.connect();
  });
  after(async () => {
    await locker?.end();
    await dataSource?.destroy();
    await schema?.drop();
  });

  async function budget(amountMicros: number, keyId: string = randomUUID()): Promise<string> {
    const id = randomUUID();
    await dataSource.query(
      `INSERT INTO budgets (id, scope, owner_id, period, amount_micros) VALUES ($1, 'KEY', $2, 'NONE', $3)`,
      [id, keyId, amountMicros],
    );
    return id;
  }
  const leaseOf = (leases: BudgetLease[], id: string) => leases.find((lease) => lease.budgetId === id)!;

  it('tops up one budget while another is locked, and refreshes without taking any lock', async () => {
    const [a, b] = [await budget(400), await budget(400)];
    const first = await budgets.grant('node-lock', 1, []);
    assert.equal(leaseOf(first, a).grantedMicros, 100, 'a quarter of the budget for the only node');
    const b0 = leaseOf(first, b);
    await locker.query('BEGIN');
    try {
      await locker.query('SELECT id FROM budgets WHERE id = $1 FOR UPDATE', [a]);
      const refreshed = await within(5_000, 'a refresh with nothing to top up', budgets.grant('node-lock', 1, []));
      assert.equal(leaseOf(refreshed, a).grantedMicros, 100);
      const spend = [{ budgetId: b, periodStartMs: b0.periodStartMs, spentMicros: 100 }];
      const topped = await within(5_000, 'a top-up of another budget', budgets.grant('node-lock', 1, spend));
      assert.deepEqual(
        [leaseOf(topped, b).grantedMicros, leaseOf(topped, b).spentMicros, leaseOf(topped, b).ungrantedMicros],
        [200, 100, 200],
      );
    } finally {
      await locker.query('ROLLBACK');
    }
  });

  it('reconciles the spending of one budget while another is locked', async () => {
    const keyId = randomUUID();
    const [a, b] = [await budget(400), await budget(400, keyId)];
    const charged = auditRecordSchema.parse({
      ...newAuditRecord('node-killed', 'tool_call', 'ok'),
      keyId,
      upstream: 'ev',
      tool: 'ev__echo',
      costMicros: 30,
    });
    await new AuditStore(dataSource, createLogger({ level: 'silent' })).insert([charged]);
    await locker.query('BEGIN');
    try {
      await locker.query('SELECT id FROM budgets WHERE id = $1 FOR UPDATE', [a]);
      assert.equal(await within(5_000, 'reconciling a record of another budget', budgets.reconcile()), 1);
    } finally {
      await locker.query('ROLLBACK');
    }
    const [lease] = await dataSource.query(
      `SELECT node_id, spent_micros::int AS spent, audited_micros::int AS audited FROM budget_leases
       WHERE budget_id = $1`,
      [b],
    );
    assert.deepEqual(lease, { node_id: 'node-killed', spent: 30, audited: 30 });
  });

  it('never leases more than the budget to nodes granted concurrently', async () => {
    const id = await budget(1_000);
    const nodes = Array.from({ length: 16 }, (_, i) => `node-${i}`);
    const spent = new Map<string, number>();
    for (let round = 0; round < 6; round++) {
      await Promise.all(
        nodes.map(async (node) => {
          const previous = spent.get(node);
          const leases = await budgets.grant(
            node,
            nodes.length,
            previous === undefined ? [] : [{ budgetId: id, periodStartMs: 0, spentMicros: previous }],
          );
          // Every node spends all it holds, so each round asks for a top-up.
          spent.set(node, leaseOf(leases, id).grantedMicros);
        }),
      );
    }
    const [row] = await dataSource.query(
      `SELECT sum(granted_micros)::int AS granted, sum(spent_micros)::int AS spent FROM budget_leases
       WHERE budget_id = $1`,
      [id],
    );
    assert.equal(row.granted, 1_000, 'the whole budget was leased, and no more');
    assert.ok(row.spent <= 1_000);
  });
});
