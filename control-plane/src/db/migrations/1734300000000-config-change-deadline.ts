import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 12 (a database that hangs): a configuration change carries a deadline in the setting
 * `portcullis.change_deadline` (set by the statement that bumps the revision, on the server's
 * clock), and this trigger, run at COMMIT, refuses to commit it later. A COMMIT that reached a
 * database which then hung is thus never applied long after its caller was told it failed.
 */
export class ConfigChangeDeadline1734300000000 implements MigrationInterface {
  name = 'ConfigChangeDeadline1734300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE FUNCTION config_change_deadline() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        deadline timestamptz := nullif(current_setting('portcullis.change_deadline', true), '')::timestamptz;
      BEGIN
        IF deadline IS NOT NULL AND clock_timestamp() > deadline THEN
          RAISE EXCEPTION 'configuration change not committed: its deadline % passed', deadline
            USING ERRCODE = 'query_canceled';
        END IF;
        RETURN NULL;
      END $$`);
    await queryRunner.query(`
      CREATE CONSTRAINT TRIGGER config_change_deadline AFTER UPDATE ON config_revision
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION config_change_deadline()`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TRIGGER IF EXISTS config_change_deadline ON config_revision`);
    await queryRunner.query(`DROP FUNCTION IF EXISTS config_change_deadline()`);
  }
}
