import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 5: an upstream's prompts, resources and resource templates as nodes report them (summaries,
 * never content), one row per upstream and kind: the list (at most the node's cap of entries), how
 * many the upstream listed in all, and when and how the list last changed.
 */
export class UpstreamCatalogLists1734200000000 implements MigrationInterface {
  name = 'UpstreamCatalogLists1734200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE upstream_catalog_lists (
        upstream_id uuid NOT NULL REFERENCES upstreams (id) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN ('PROMPTS', 'RESOURCES', 'RESOURCE_TEMPLATES')),
        entries jsonb NOT NULL,
        total integer NOT NULL,
        content_sha256 text NOT NULL,
        added jsonb NOT NULL DEFAULT '[]',
        removed jsonb NOT NULL DEFAULT '[]',
        changed jsonb NOT NULL DEFAULT '[]',
        node_id text,
        changed_at timestamptz NOT NULL,
        reported_at timestamptz NOT NULL,
        PRIMARY KEY (upstream_id, kind)
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS upstream_catalog_lists`);
  }
}
