import type { DataSource, EntityManager } from 'typeorm';
import type { ConfigChangeBus, KnownChange } from '../config/change-bus.ts';

/** What every config-changing service needs. */
export interface ConfigStore {
  readonly dataSource: DataSource;
  readonly changes: ConfigChangeBus;
}

/** The statement that moves the configuration revision on; every config change runs it once. */
const BUMP_REVISION = `UPDATE config_revision SET version = version + 1 WHERE id = 1`;

/** Bumps the configuration revision; call only inside the transaction that makes the change. */
export async function bumpRevision(manager: EntityManager): Promise<string> {
  // Through a CTE: TypeORM returns [rows, count] for a bare UPDATE, plain rows for a SELECT.
  const rows: Array<{ version: string }> = await manager.query(`WITH bumped AS (${BUMP_REVISION} RETURNING version) SELECT version FROM bumped`);
  const version = rows[0]?.version;
  if (version === undefined) throw new Error('config_revision row is missing; the migrations did not run');
  return String(version);
}

/** The newest committed revision. */
export async function currentRevision(manager: EntityManager): Promise<string> {
  const rows: Array<{ version: string }> = await manager.query(`SELECT version FROM config_revision WHERE id = 1`);
  const version = rows[0]?.version;
  if (version === undefined) throw new Error('config_revision row is missing; the migrations did not run');
  return String(version);
}

/**
 * Runs `change` in a transaction that, when `change` reports `changed`, also bumps the revision and
 * announces it; this process is told once the transaction committed. Nothing changed: no bump.
 * `known`, when given, must be the whole of what the transaction changed in the configuration
 * (see `KnownChange`): this process publishes it without reading it back.
 */
export async function withConfigChange<T>(
  store: ConfigStore,
  change: (manager: EntityManager) => Promise<{ result: T; changed: boolean; known?: KnownChange }>,
): Promise<T> {
  let committed: { version: string; known: KnownChange | undefined } | undefined;
  const result = await store.dataSource.transaction(async (manager) => {
    const outcome = await change(manager);
    if (outcome.changed) {
      const version = await bumpRevision(manager);
      await store.changes.announce(manager, version);
      committed = { version, known: outcome.known };
    }
    return outcome.result;
  });
  if (committed !== undefined) store.changes.committed(committed.version, committed.known);
  return result;
}

/**
 * A config change made by one data-modifying statement, committed on its own (a single statement is
 * atomic: no BEGIN/COMMIT round trips, and the revision is bumped and announced in the same
 * statement, so the whole change costs one round trip before every node is told). `changeCte` is a
 * data-modifying statement whose RETURNING rows are the change (it may use `$1…$n` from `params`);
 * no rows: nothing changed, nothing bumped. Resolves with those rows, each with the new `version`
 * (the revision bumped once, whatever the number of rows), and tells this process after the commit,
 * with `known` when that is the whole of what the statement changed (see KnownChange).
 */
export async function singleStatementChange(
  store: ConfigStore,
  changeCte: string,
  params: readonly unknown[],
  known: KnownChange | undefined,
): Promise<Array<Record<string, unknown>>> {
  const announcement = store.changes.announcementSql('b.version::text', params.length + 1);
  const rows: Array<Record<string, unknown>> = await store.dataSource.query(
    `WITH changed AS (${changeCte}),
          bumped AS (${BUMP_REVISION} AND EXISTS (SELECT 1 FROM changed) RETURNING version)
     SELECT c.*, b.version::text AS version${announcement ? `, ${announcement.sql} AS announced` : ''}
     FROM changed c CROSS JOIN bumped b`,
    [...params, ...(announcement?.params ?? [])],
  );
  const version = rows[0]?.['version'];
  if (typeof version === 'string') store.changes.committed(version, known);
  return rows;
}
