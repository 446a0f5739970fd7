import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 14: the audit trail. `audit_events` is partitioned by day on `time` (retention drops whole
 * days: `DROP TABLE audit_events_YYYYMMDD`), append-only (a trigger refuses UPDATE, DELETE and
 * TRUNCATE; only the table owner disabling it can bypass it, which `portcullis audit verify` then
 * detects through the hash chain), and chained: every row carries a global `seq`, the id of the
 * row before it and SHA-256(previous hash ‖ canonical row). `audit_chain_head` holds the last link
 * (one row, updated under the insert's advisory lock), `audit_chain_anchor` the last link of
 * periods dropped by retention (verification starts there).
 *
 * The primary key is (id, time) as a partitioned table requires; the time is the UUIDv7's own
 * timestamp, so (id, time) is as unique as id, and a re-sent record conflicts with its first copy.
 */
export class AuditEvents1797000000000 implements MigrationInterface {
  name = 'AuditEvents1797000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE audit_events (
        id uuid NOT NULL,
        time timestamptz NOT NULL,
        seq bigint NOT NULL,
        prev_id uuid,
        hash bytea NOT NULL,
        node_id text NOT NULL,
        kind text NOT NULL,
        status text NOT NULL,
        method text,
        key_id text,
        team_id text,
        customer_id text,
        subject text,
        upstream text,
        tool text,
        arguments text,
        result text,
        error_code integer,
        error_message text,
        latency_us integer NOT NULL,
        gateway_latency_us integer NOT NULL,
        upstream_latency_us integer,
        cost_micros bigint,
        parent_id text,
        trace_id text,
        session_id text,
        client_name text,
        client_version text,
        stored_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (id, time)
      ) PARTITION BY RANGE (time)`);
    await queryRunner.query(`CREATE INDEX audit_events_time ON audit_events (time DESC, id DESC)`);
    await queryRunner.query(`CREATE INDEX audit_events_key ON audit_events (key_id, time DESC)`);
    await queryRunner.query(`CREATE INDEX audit_events_team ON audit_events (team_id, time DESC)`);
    await queryRunner.query(`CREATE INDEX audit_events_tool ON audit_events (tool, time DESC)`);
    await queryRunner.query(`CREATE INDEX audit_events_status ON audit_events (status, time DESC)`);
    await queryRunner.query(`CREATE INDEX audit_events_parent ON audit_events (parent_id) WHERE parent_id IS NOT NULL`);
    await queryRunner.query(`CREATE INDEX audit_events_seq ON audit_events (seq)`);
    await queryRunner.query(`
      CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_events is append-only: % is refused', TG_OP
          USING ERRCODE = 'insufficient_privilege',
                HINT = 'old periods are removed by retention (dropping a whole day partition), never row by row';
      END $$`);
    await queryRunner.query(`
      CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
      FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`);
    await queryRunner.query(`
      CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
      FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()`);
    await queryRunner.query(`
      CREATE TABLE audit_chain_head (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        seq bigint NOT NULL,
        last_id uuid,
        hash bytea NOT NULL
      )`);
    await queryRunner.query(`INSERT INTO audit_chain_head (seq, last_id, hash) VALUES (0, NULL, ''::bytea)`);
    await queryRunner.query(`
      CREATE TABLE audit_chain_anchor (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        seq bigint NOT NULL,
        last_id uuid,
        hash bytea NOT NULL,
        dropped_before timestamptz NOT NULL
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS audit_chain_anchor`);
    await queryRunner.query(`DROP TABLE IF EXISTS audit_chain_head`);
    await queryRunner.query(`DROP TABLE IF EXISTS audit_events`);
    await queryRunner.query(`DROP FUNCTION IF EXISTS audit_events_append_only()`);
  }
}
