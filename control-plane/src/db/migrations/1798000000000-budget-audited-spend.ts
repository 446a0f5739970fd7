import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 15: spending reconciled from the audit trail. Each lease keeps what its node's audit records
 * of the period cost (`audited_micros`), added up from the records stored since the last run (the
 * `budget_audited_seq` setting: the audit chain's seq reconciled through). A lease's spent is never
 * below it, so spending a node did not report (killed before its report) still counts.
 */
export class BudgetAuditedSpend1798000000000 implements MigrationInterface {
  name = 'BudgetAuditedSpend1798000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE budget_leases ADD COLUMN audited_micros bigint NOT NULL DEFAULT 0 CHECK (audited_micros >= 0)`,
    );
    // Records stored before this migration are not reconciled: their spending was reported by their nodes.
    await queryRunner.query(
      `INSERT INTO settings (key, value) SELECT 'budget_audited_seq', seq::text FROM audit_chain_head
       ON CONFLICT (key) DO NOTHING`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DELETE FROM settings WHERE key = 'budget_audited_seq'`);
    await queryRunner.query(`ALTER TABLE budget_leases DROP COLUMN audited_micros`);
  }
}
