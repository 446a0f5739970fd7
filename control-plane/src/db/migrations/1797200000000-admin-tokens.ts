import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 15: admin tokens per person, each with a role. Only the SHA-256 of the secret is kept; the
 * prefix tells tokens apart in lists. Revoked tokens stay (who had access, until when).
 */
export class AdminTokens1797200000000 implements MigrationInterface {
  name = 'AdminTokens1797200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE admin_tokens (
        id uuid PRIMARY KEY,
        name text NOT NULL,
        role text NOT NULL CHECK (role IN ('admin', 'operator', 'auditor')),
        secret_sha256 bytea NOT NULL UNIQUE,
        prefix text NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS admin_tokens`);
  }
}
