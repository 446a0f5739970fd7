import type { DataSource, EntityManager } from 'typeorm';
import type { ConfigChangeBus } from '../config/change-bus.ts';

/** What every config-changing service needs. */
export interface ConfigStore {
  readonly dataSource: DataSource;
  readonly changes: ConfigChangeBus;
}

/** Bumps the configuration revision; call only inside the transaction that makes the change. */
export async function bumpRevision(manager: EntityManager): Promise<string> {
  // Through a CTE: TypeORM returns [rows, count] for a bare UPDATE, plain rows for a SELECT.
  const rows: Array<{ version: string }> = await manager.query(
    `WITH bumped AS (UPDATE config_revision SET version = version + 1 WHERE id = 1 RETURNING version) SELECT version FROM bumped`,
  );
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
 */
export async function withConfigChange<T>(
  store: ConfigStore,
  change: (manager: EntityManager) => Promise<{ result: T; changed: boolean }>,
): Promise<T> {
  let committedVersion: string | undefined;
  const result = await store.dataSource.transaction(async (manager) => {
    const outcome = await change(manager);
    if (outcome.changed) {
      committedVersion = await bumpRevision(manager);
      await store.changes.announce(manager, committedVersion);
    }
    return outcome.result;
  });
  if (committedVersion !== undefined) store.changes.committed(committedVersion);
  return result;
}
