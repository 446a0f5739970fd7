import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 14: content logging set from the control plane, per upstream (true: recorded, false: never)
 * and per key (INHERIT follows the gateway default in settings `audit_settings`, ON, OFF).
 */
export class AuditContent1798200000000 implements MigrationInterface {
  name = 'AuditContent1798200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE upstreams ADD COLUMN audit_content boolean NOT NULL DEFAULT true`);
    await queryRunner.query(
      `ALTER TABLE virtual_keys ADD COLUMN audit_content text NOT NULL DEFAULT 'INHERIT' CHECK (audit_content IN ` +
        `('INHERIT', 'ON', 'OFF'))`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE virtual_keys DROP COLUMN IF EXISTS audit_content`);
    await queryRunner.query(`ALTER TABLE upstreams DROP COLUMN IF EXISTS audit_content`);
  }
}
