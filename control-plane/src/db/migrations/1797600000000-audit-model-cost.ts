import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 14, cost per agent run: the model cost an application reports on a request that names its
 * run's parent id (`x-portcullis-model-cost-micros`), beside the tool cost. Rows stored before have
 * none (NULL), which keeps their place in the hash chain unchanged (audit-chain.ts).
 */
export class AuditModelCost1797600000000 implements MigrationInterface {
  name = 'AuditModelCost1797600000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS model_cost_micros bigint`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE audit_events DROP COLUMN IF EXISTS model_cost_micros`);
  }
}
