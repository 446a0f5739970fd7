import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 17: code mode, per upstream (on or off) and per key (INHERIT follows each upstream, ON for
 * every upstream, OFF never).
 */
export class CodeMode1797400000000 implements MigrationInterface {
  name = 'CodeMode1797400000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE upstreams ADD COLUMN code_mode boolean NOT NULL DEFAULT false`);
    await queryRunner.query(
      `ALTER TABLE virtual_keys ADD COLUMN code_mode text NOT NULL DEFAULT 'INHERIT' CHECK (code_mode IN ` +
        `('INHERIT', 'ON', 'OFF'))`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE virtual_keys DROP COLUMN IF EXISTS code_mode`);
    await queryRunner.query(`ALTER TABLE upstreams DROP COLUMN IF EXISTS code_mode`);
  }
}
