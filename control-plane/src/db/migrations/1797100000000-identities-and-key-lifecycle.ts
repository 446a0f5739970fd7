import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 15: customers above teams; access lists (allow and deny, for tools, prompts and resources)
 * on teams and keys; the key lifecycle (disable, expiry, rotation with a grace period); rate limits
 * on keys, teams and customers. Lists and limits are JSON objects (`AccessListsJson`,
 * `RateLimitsJson` in entities.ts), checked with zod wherever they are read.
 */
export class IdentitiesAndKeyLifecycle1797100000000 implements MigrationInterface {
  name = 'IdentitiesAndKeyLifecycle1797100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE customers (
        id uuid PRIMARY KEY,
        name text NOT NULL,
        rate_limits jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT customers_name_key UNIQUE (name)
      )`);
    await queryRunner.query(`
      ALTER TABLE teams
        ADD COLUMN customer_id uuid REFERENCES customers (id) ON DELETE RESTRICT,
        ADD COLUMN access jsonb NOT NULL DEFAULT '{}',
        ADD COLUMN rate_limits jsonb NOT NULL DEFAULT '{}'`);
    await queryRunner.query(`CREATE INDEX teams_customer_id_idx ON teams (customer_id)`);
    await queryRunner.query(`
      ALTER TABLE virtual_keys
        ADD COLUMN access jsonb NOT NULL DEFAULT '{}',
        ADD COLUMN rate_limits jsonb NOT NULL DEFAULT '{}',
        ADD COLUMN enabled boolean NOT NULL DEFAULT true,
        ADD COLUMN expires_at timestamptz,
        ADD COLUMN previous_secret_sha256 bytea,
        ADD COLUMN previous_secret_expires_at timestamptz,
        ADD COLUMN rotated_at timestamptz`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      ALTER TABLE virtual_keys
        DROP COLUMN IF EXISTS access, DROP COLUMN IF EXISTS rate_limits, DROP COLUMN IF EXISTS enabled,
        DROP COLUMN IF EXISTS expires_at, DROP COLUMN IF EXISTS previous_secret_sha256,
        DROP COLUMN IF EXISTS previous_secret_expires_at, DROP COLUMN IF EXISTS rotated_at`);
    await queryRunner.query(`DROP INDEX IF EXISTS teams_customer_id_idx`);
    await queryRunner.query(
      `ALTER TABLE teams DROP COLUMN IF EXISTS customer_id, DROP COLUMN IF EXISTS access, DROP COLUMN IF EXISTS ` +
        `rate_limits`,
    );
    await queryRunner.query(`DROP TABLE IF EXISTS customers`);
  }
}
