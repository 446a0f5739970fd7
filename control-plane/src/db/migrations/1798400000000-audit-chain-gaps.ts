import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 14: retention records each run of chain positions it drops (first and last seq, and the id and link of the
 * last row in it), so `audit verify` walks every row kept, from the chain's start, and tells positions dropped by
 * retention from rows deleted. Before, verification started after the anchor (the highest seq dropped): a row kept
 * below it, which a late record (a node's backlog, stored after newer days) leaves when its old day is dropped, was
 * never checked. What retention dropped before this table existed is one opaque gap up to the anchor: rows kept
 * inside it are not checked, as before. Append-only, like the rows.
 */
export class AuditChainGaps1798400000000 implements MigrationInterface {
  name = 'AuditChainGaps1798400000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE audit_chain_gaps (
        from_seq bigint NOT NULL,
        to_seq bigint NOT NULL CHECK (to_seq >= from_seq),
        last_id uuid NOT NULL,
        last_hash bytea NOT NULL,
        opaque boolean NOT NULL DEFAULT false
      )`);
    await queryRunner.query(`CREATE INDEX audit_chain_gaps_from ON audit_chain_gaps (from_seq)`);
    await queryRunner.query(
      `INSERT INTO audit_chain_gaps (from_seq, to_seq, last_id, last_hash, opaque)
       SELECT 1, seq, last_id, hash, true FROM audit_chain_anchor WHERE seq > 0 AND last_id IS NOT NULL`,
    );
    await queryRunner.query(`
      CREATE FUNCTION audit_chain_gaps_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_chain_gaps is append-only: % is refused', TG_OP
          USING ERRCODE = 'insufficient_privilege',
                HINT = 'retention adds a gap for each run of chain positions it drops; verification reads them';
      END $$`);
    await queryRunner.query(`
      CREATE TRIGGER audit_chain_gaps_no_change BEFORE UPDATE OR DELETE ON audit_chain_gaps
      FOR EACH ROW EXECUTE FUNCTION audit_chain_gaps_append_only()`);
    // Row triggers do not fire on TRUNCATE, which would empty the table at once.
    await queryRunner.query(`
      CREATE TRIGGER audit_chain_gaps_no_truncate BEFORE TRUNCATE ON audit_chain_gaps
      FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_gaps_append_only()`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS audit_chain_gaps`);
    await queryRunner.query(`DROP FUNCTION IF EXISTS audit_chain_gaps_append_only()`);
  }
}
