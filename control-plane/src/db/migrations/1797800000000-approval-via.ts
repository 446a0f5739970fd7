import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 16: who an APPROVE rule asks. NULL or OPERATOR: an admin or operator through GraphQL;
 * CLIENT: the person at the agent's client by MCP elicitation (an operator where the agent cannot
 * be asked).
 */
export class ApprovalVia1797800000000 implements MigrationInterface {
  name = 'ApprovalVia1797800000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      ALTER TABLE execution_policies
        ADD COLUMN approval_via text CHECK (approval_via IN ('OPERATOR', 'CLIENT')),
        ADD CONSTRAINT execution_policies_approval_via_approve CHECK (approval_via IS NULL OR policy = 'APPROVE')`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE execution_policies DROP COLUMN IF EXISTS approval_via`);
  }
}
