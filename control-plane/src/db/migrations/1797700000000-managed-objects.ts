import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 18: declarative configuration. `managed`: the object was created (or adopted) by
 * `portcullis apply`, so an apply with prune may delete it when the file no longer names it.
 */
export class ManagedObjects1797700000000 implements MigrationInterface {
  name = 'ManagedObjects1797700000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    for (const table of ['upstreams', 'teams', 'customers', 'virtual_keys'])
      await queryRunner.query(`ALTER TABLE ${table} ADD COLUMN managed boolean NOT NULL DEFAULT false`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const table of ['upstreams', 'teams', 'customers', 'virtual_keys'])
      await queryRunner.query(`ALTER TABLE ${table} DROP COLUMN IF EXISTS managed`);
  }
}
