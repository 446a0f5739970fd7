import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 5: ended 2025-era sessions (DELETE /mcp) outlive a restart of every control-plane replica.
 * A row is kept only until the session id would have expired anyway (`expires_at`), and pruned
 * after that, so the table is bounded by the sessions ended within one maximum session age.
 * Keyed by the SHA-256 of the session id: ids are signed tokens of up to 8 KiB, too long for a
 * btree key.
 */
export class EndedSessions1734100000000 implements MigrationInterface {
  name = 'EndedSessions1734100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE ended_sessions (
        session_sha256 bytea PRIMARY KEY,
        session_id text NOT NULL,
        key_id text NOT NULL,
        from_node_id text NOT NULL,
        expires_at timestamptz NOT NULL,
        ended_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`CREATE INDEX ended_sessions_expires_at_idx ON ended_sessions (expires_at)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS ended_sessions`);
  }
}
