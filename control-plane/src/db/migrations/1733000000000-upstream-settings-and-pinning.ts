import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 5: per-upstream connection settings, sealed credentials (plaintext values left by the
 * first migration are sealed at startup, where the secret key is known), tool-definition pins and
 * their history.
 */
export class UpstreamSettingsAndPinning1733000000000 implements MigrationInterface {
  name = 'UpstreamSettingsAndPinning1733000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      ALTER TABLE upstreams
        ADD COLUMN cwd text,
        ADD COLUMN bearer_token text,
        ADD COLUMN connect_timeout_ms integer CHECK (connect_timeout_ms > 0),
        ADD COLUMN call_timeout_ms integer CHECK (call_timeout_ms > 0),
        ADD COLUMN health_interval_ms integer CHECK (health_interval_ms > 0),
        ADD COLUMN health_failure_threshold integer CHECK (health_failure_threshold > 0),
        ADD COLUMN enabled boolean NOT NULL DEFAULT true,
        ADD COLUMN pin_tool_definitions boolean NOT NULL DEFAULT true,
        ADD COLUMN expose_unprefixed boolean NOT NULL DEFAULT false,
        ADD COLUMN secrets_version uuid NOT NULL DEFAULT gen_random_uuid(),
        ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now()`);
    await queryRunner.query(`
      ALTER TABLE tools
        ADD COLUMN pinned_sha256 text,
        ADD COLUMN pending_definition jsonb,
        ADD COLUMN pending_sha256 text,
        ADD COLUMN listed boolean NOT NULL DEFAULT true`);
    await queryRunner.query(`
      CREATE TABLE tool_definition_changes (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        upstream_id uuid NOT NULL REFERENCES upstreams (id) ON DELETE CASCADE,
        tool_id uuid NOT NULL REFERENCES tools (id) ON DELETE CASCADE,
        tool_name text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('ADDED', 'CHANGED', 'HELD_BACK', 'REVERTED', 'ACCEPTED', 'REMOVED')),
        old_sha256 text,
        new_sha256 text,
        definition jsonb,
        node_id text,
        changed_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(
      `CREATE INDEX tool_definition_changes_tool_idx ON tool_definition_changes (tool_id, changed_at)`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS tool_definition_changes`);
    await queryRunner.query(
      `ALTER TABLE tools DROP COLUMN pinned_sha256, DROP COLUMN pending_definition, DROP COLUMN pending_sha256, ` +
        `DROP COLUMN listed`,
    );
    await queryRunner.query(`
      ALTER TABLE upstreams DROP COLUMN cwd, DROP COLUMN bearer_token, DROP COLUMN connect_timeout_ms,
        DROP COLUMN call_timeout_ms,
        DROP COLUMN health_interval_ms, DROP COLUMN health_failure_threshold, DROP COLUMN enabled,
          DROP COLUMN pin_tool_definitions,
        DROP COLUMN expose_unprefixed, DROP COLUMN secrets_version, DROP COLUMN updated_at`);
  }
}
