import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 14, ingest throughput: fewer indexes to keep up per inserted audit row, which is most of the
 * database's time at 30,000 rows/s on two cores.
 *
 * - The primary key becomes (time, id) instead of (id, time): still as unique as id (the time is the
 *   UUIDv7's own timestamp, so a re-sent record still conflicts with its first copy), and scanned
 *   backwards it is the `ORDER BY time DESC, id DESC` of `auditEvents` and its cursor, so
 *   `audit_events_time`, which held the same keys, goes: one index fewer to update per row.
 * - `audit_events_status` indexes only the rows that are not `ok`: most rows are, and the filters that
 *   want an index (`status: ERROR`, …) ask for the others; `status = 'ok'` reads most of the table anyway.
 *
 * On a big table this rebuilds the primary key of every partition while holding an ACCESS EXCLUSIVE lock
 * on `audit_events`: ingest waits (nodes keep spooling and send again) until it is done.
 */
export class AuditTimePrimaryKey1798300000000 implements MigrationInterface {
  name = 'AuditTimePrimaryKey1798300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey`);
    await queryRunner.query(`ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (time, id)`);
    await queryRunner.query(`DROP INDEX IF EXISTS audit_events_time`);
    await queryRunner.query(`DROP INDEX IF EXISTS audit_events_status`);
    await queryRunner.query(
      `CREATE INDEX audit_events_status ON audit_events (status, time DESC) WHERE status <> 'ok'`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX IF EXISTS audit_events_status`);
    await queryRunner.query(`CREATE INDEX audit_events_status ON audit_events (status, time DESC)`);
    await queryRunner.query(`CREATE INDEX audit_events_time ON audit_events (time DESC, id DESC)`);
    await queryRunner.query(`ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey`);
    await queryRunner.query(`ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id, time)`);
  }
}
