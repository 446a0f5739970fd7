import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 12: which MCP revision nodes speak to an upstream. `auto` (probe, fall back), `legacy`,
 * `modern`, or one exact revision, for a server whose newest revision is broken.
 */
export class UpstreamProtocolVersion1796324238367 implements MigrationInterface {
  name = 'UpstreamProtocolVersion1796324238367';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE upstreams ADD COLUMN protocol_version text NOT NULL DEFAULT 'auto'`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE upstreams DROP COLUMN IF EXISTS protocol_version`);
  }
}
