import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 15: what a tool call costs, in integer micro-units of one currency. `tool` is the
 * upstream's own tool name, or '' for the upstream's default (every tool without a price of its own).
 */
export class ToolPrices1797100000001 implements MigrationInterface {
  name = 'ToolPrices1797100000001';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE tool_prices (
        upstream_id uuid NOT NULL REFERENCES upstreams (id) ON DELETE CASCADE,
        tool text NOT NULL,
        price_micros bigint NOT NULL CHECK (price_micros >= 0),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (upstream_id, tool)
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS tool_prices`);
  }
}
