import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The walking-skeleton schema. Unqualified names: the data source sets `search_path` to its schema. */
export class Initial1732500000000 implements MigrationInterface {
  name = 'Initial1732500000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE teams (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT teams_name_key UNIQUE (name)
      )`);
    await queryRunner.query(`
      CREATE TABLE upstreams (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        transport text NOT NULL CHECK (transport IN ('STDIO', 'STREAMABLE_HTTP', 'SSE')),
        command text,
        args jsonb NOT NULL DEFAULT '[]',
        env jsonb NOT NULL DEFAULT '[]',
        url text,
        headers jsonb NOT NULL DEFAULT '[]',
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT upstreams_name_key UNIQUE (name)
      )`);
    await queryRunner.query(`
      CREATE TABLE tools (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        upstream_id uuid NOT NULL REFERENCES upstreams (id) ON DELETE CASCADE,
        name text NOT NULL,
        description text,
        definition jsonb NOT NULL,
        first_seen_at timestamptz NOT NULL DEFAULT now(),
        last_seen_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT tools_upstream_name_key UNIQUE (upstream_id, name)
      )`);
    await queryRunner.query(`
      CREATE TABLE virtual_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        prefix text NOT NULL,
        secret_sha256 bytea NOT NULL,
        team_id uuid REFERENCES teams (id) ON DELETE SET NULL,
        allowed_tools jsonb NOT NULL DEFAULT '["*"]',
        revoked_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT virtual_keys_secret_sha256_key UNIQUE (secret_sha256)
      )`);
    await queryRunner.query(`
      CREATE TABLE data_plane_nodes (
        id text PRIMARY KEY,
        mcp_url text,
        software_version text,
        connected boolean NOT NULL DEFAULT false,
        stream_id uuid,
        applied_version text,
        last_error text,
        connected_at timestamptz,
        last_seen_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`
      CREATE TABLE upstream_node_status (
        upstream_id uuid NOT NULL REFERENCES upstreams (id) ON DELETE CASCADE,
        node_id text NOT NULL REFERENCES data_plane_nodes (id) ON DELETE CASCADE,
        state text NOT NULL,
        error text,
        server_name text,
        server_version text,
        protocol_version text,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (upstream_id, node_id)
      )`);
    await queryRunner.query(`CREATE TABLE settings (key text PRIMARY KEY, value text NOT NULL)`);
    await queryRunner.query(`
      CREATE TABLE config_revision (
        id smallint PRIMARY KEY CHECK (id = 1),
        version bigint NOT NULL
      )`);
    await queryRunner.query(`INSERT INTO config_revision (id, version) VALUES (1, 1)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const table of [
      'config_revision',
      'settings',
      'upstream_node_status',
      'data_plane_nodes',
      'virtual_keys',
      'tools',
      'upstreams',
      'teams',
    ]) {
      await queryRunner.query(`DROP TABLE IF EXISTS ${table}`);
    }
  }
}
