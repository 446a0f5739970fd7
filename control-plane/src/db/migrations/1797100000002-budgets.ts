import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 15: budgets per key, team or customer (one each), with calendar periods (UTC) or none, and
 * the leases the control plane grants each node per budget and period, with what the node reports
 * it spent of them. The sum of granted_micros over a period's rows never exceeds the budget (grants
 * are made under the budget row's lock), so neither can what the nodes spend.
 */
export class Budgets1797100000002 implements MigrationInterface {
  name = 'Budgets1797100000002';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE budgets (
        id uuid PRIMARY KEY,
        scope text NOT NULL CHECK (scope IN ('KEY', 'TEAM', 'CUSTOMER')),
        owner_id uuid NOT NULL,
        period text NOT NULL CHECK (period IN ('DAY', 'WEEK', 'MONTH', 'NONE')),
        amount_micros bigint NOT NULL CHECK (amount_micros >= 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT budgets_owner_key UNIQUE (scope, owner_id)
      )`);
    await queryRunner.query(`
      CREATE TABLE budget_leases (
        budget_id uuid NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
        period_start timestamptz NOT NULL,
        node_id text NOT NULL,
        granted_micros bigint NOT NULL DEFAULT 0 CHECK (granted_micros >= 0),
        spent_micros bigint NOT NULL DEFAULT 0 CHECK (spent_micros >= 0),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (budget_id, period_start, node_id)
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS budget_leases`);
    await queryRunner.query(`DROP TABLE IF EXISTS budgets`);
  }
}
