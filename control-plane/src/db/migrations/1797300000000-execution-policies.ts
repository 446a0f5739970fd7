import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 16: execution policy rules (auto, approve, deny) of an upstream (a tool by the upstream's
 * own name, or "*" for its default), a team or a key (exposed-name patterns). Exactly one scope;
 * a rule goes with its scope when that is deleted. `position` keeps the order they were given in.
 */
export class ExecutionPolicies1797300000000 implements MigrationInterface {
  name = 'ExecutionPolicies1797300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE execution_policies (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        upstream_id uuid REFERENCES upstreams(id) ON DELETE CASCADE,
        team_id uuid REFERENCES teams(id) ON DELETE CASCADE,
        key_id uuid REFERENCES virtual_keys(id) ON DELETE CASCADE,
        position integer NOT NULL,
        tool text NOT NULL,
        policy text NOT NULL CHECK (policy IN ('AUTO', 'APPROVE', 'DENY')),
        argument text,
        pattern text,
        approval_timeout_ms integer,
        created_at timestamptz NOT NULL DEFAULT now(),
        CHECK (num_nonnulls(upstream_id, team_id, key_id) = 1),
        CHECK ((argument IS NULL) = (pattern IS NULL)),
        CHECK (argument IS NULL OR policy = 'APPROVE')
      )`);
    await queryRunner.query(`CREATE INDEX execution_policies_upstream ON execution_policies (upstream_id)`);
    await queryRunner.query(`CREATE INDEX execution_policies_team ON execution_policies (team_id)`);
    await queryRunner.query(`CREATE INDEX execution_policies_key ON execution_policies (key_id)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS execution_policies`);
  }
}
