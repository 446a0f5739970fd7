import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 16: calls held on a node for a person's approval. The node makes the id and sends the
 * request again after every reconnect (inserted once); the status moves once from PENDING to a
 * decision (APPROVED, DENIED) or an end (TIMED_OUT, WITHDRAWN, NODE_RESTARTED). `node_tag` names the
 * node process holding the call: a hello with another tag means that process is gone.
 */
export class Approvals1797300000001 implements MigrationInterface {
  name = 'Approvals1797300000001';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE approvals (
        id uuid PRIMARY KEY,
        node_id text NOT NULL,
        node_tag text NOT NULL,
        key_id text NOT NULL,
        team_id text,
        tool text NOT NULL,
        upstream text NOT NULL,
        arguments jsonb NOT NULL,
        reason text NOT NULL,
        parent_id text,
        status text NOT NULL CHECK (status IN ('PENDING', 'APPROVED', 'DENIED', 'TIMED_OUT', 'WITHDRAWN',
          'NODE_RESTARTED')),
        requested_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        decided_at timestamptz,
        decided_by text,
        decision_reason text
      )`);
    await queryRunner.query(`CREATE INDEX approvals_status ON approvals (status, requested_at)`);
    await queryRunner.query(`CREATE INDEX approvals_node ON approvals (node_id) WHERE status = 'PENDING'`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS approvals`);
  }
}
