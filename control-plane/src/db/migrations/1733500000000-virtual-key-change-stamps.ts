import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 4: incremental snapshots. Every virtual-key row carries the configuration revision that
 * last changed it (`config_version`), and deleted keys leave a tombstone carrying theirs, so the
 * snapshot builder reads only the keys changed since the revision it built last.
 *
 * A trigger stamps each written row with the revision its transaction is about to commit: at the
 * transaction's first key write it locks the revision row (every config change takes that lock at
 * its bump anyway, and holds it to commit) and takes `version + 1`, which is exactly what the
 * transaction's bump will return, since nobody else can bump in between. Stamps therefore follow
 * commit order: a reader that sees revision R sees every row stamped up to R and none stamped
 * later. A write whose transaction never bumps is stamped with the next revision, and is picked up
 * by whichever change commits it. One row version per write: nothing to rewrite or vacuum later.
 */
export class VirtualKeyChangeStamps1733500000000 implements MigrationInterface {
  name = 'VirtualKeyChangeStamps1733500000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE virtual_keys ADD COLUMN config_version bigint`);
    await queryRunner.query(
      `UPDATE virtual_keys SET config_version = (SELECT version FROM config_revision WHERE id = 1)`,
    );
    await queryRunner.query(`ALTER TABLE virtual_keys ALTER COLUMN config_version SET NOT NULL`);
    await queryRunner.query(`CREATE INDEX virtual_keys_config_version_idx ON virtual_keys (config_version)`);
    await queryRunner.query(`
      CREATE TABLE virtual_key_tombstones (
        id uuid NOT NULL,
        config_version bigint NOT NULL,
        deleted_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(
      `CREATE INDEX virtual_key_tombstones_config_version_idx ON virtual_key_tombstones (config_version)`,
    );
    await queryRunner.query(`
      CREATE FUNCTION virtual_keys_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        stamp bigint := nullif(current_setting('portcullis.config_stamp', true), '')::bigint;
      BEGIN
        IF stamp IS NULL THEN
          SELECT version + 1 INTO stamp FROM config_revision WHERE id = 1 FOR UPDATE;
          PERFORM set_config('portcullis.config_stamp', stamp::text, true);
        END IF;
        IF TG_OP = 'DELETE' THEN
          INSERT INTO virtual_key_tombstones (id, config_version) VALUES (OLD.id, stamp);
          RETURN OLD;
        END IF;
        NEW.config_version := stamp;
        RETURN NEW;
      END $$`);
    await queryRunner.query(`
      CREATE TRIGGER virtual_keys_stamp BEFORE INSERT OR UPDATE OR DELETE ON virtual_keys
        FOR EACH ROW EXECUTE FUNCTION virtual_keys_stamp()`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TRIGGER IF EXISTS virtual_keys_stamp ON virtual_keys`);
    await queryRunner.query(`DROP FUNCTION IF EXISTS virtual_keys_stamp()`);
    await queryRunner.query(`DROP TABLE IF EXISTS virtual_key_tombstones`);
    await queryRunner.query(`DROP INDEX IF EXISTS virtual_keys_config_version_idx`);
    await queryRunner.query(`ALTER TABLE virtual_keys DROP COLUMN IF EXISTS config_version`);
  }
}
