import type { DataSource, EntityManager } from 'typeorm';
import { QueryFailedError } from 'typeorm';
import type { ConfigChangeBus, KnownChange } from '../config/change-bus.ts';
import { databaseFailure } from '../db/failures.ts';
import { DEFAULT_DATABASE_TIMEOUTS } from '../db/timeouts.ts';

/** What every config-changing service needs. */
export interface ConfigStore {
  readonly dataSource: DataSource;
  readonly changes: ConfigChangeBus;
  /** How long a change may take from BEGIN to COMMIT (default: the statement timeout). */
  readonly changeTimeoutMs?: number;
  /**
   * Set by `applyConfig`: every change joins this one transaction (and is told nothing of the
   * revision); the enclosing change bumps it once, if any joined change `changed`.
   */
  readonly enclosing?: { readonly manager: EntityManager; changed: boolean };
}

/** Read at COMMIT by the trigger of migration 1734300000000: a change is never committed after it. */
const DEADLINE_SETTING = 'portcullis.change_deadline';

/**
 * Moves the revision on by one, inside the transaction that makes the change, and returns the new
 * one. In the same statement: the announcement to other replicas (delivered on commit), and, with
 * `remainingMs`, the deadline after which the database refuses to commit (on its own clock).
 */
export async function bumpRevision(
  manager: EntityManager,
  changes?: ConfigChangeBus,
  remainingMs?: number,
): Promise<string> {
  const params: unknown[] = [];
  const columns = ['b.version::text AS version'];
  if (remainingMs !== undefined) {
    params.push(Math.max(0, Math.floor(remainingMs)));
    columns.push(
      `set_config('${DEADLINE_SETTING}', (clock_timestamp() + $1 * interval '1 millisecond')::text, true) AS deadline`,
    );
  }
  const announcement = changes?.announcementSql('b.version::text', params.length + 1);
  if (announcement) {
    params.push(...announcement.params);
    columns.push(`${announcement.sql} AS announced`);
  }
  const rows: Array<{ version: string }> = await manager.query(
    `WITH b AS (UPDATE config_revision SET version = version + 1 WHERE id = 1 RETURNING version)
     SELECT ${columns.join(', ')} FROM b`,
    params,
  );
  const version = rows[0]?.version;
  if (version === undefined) throw new Error('config_revision row is missing; the migrations did not run');
  return version;
}

/**
 * The one way to change the configuration. Runs `change` in a transaction that, when `change`
 * reports `changed`, also bumps the revision and announces it; this process is told once the
 * transaction committed. Nothing changed: no bump. `known`, when given, must be the whole of what the
 * transaction changed in the configuration (see `KnownChange`): this process publishes it without
 * reading it back.
 *
 * A change that cannot commit within `changeTimeoutMs` fails with DATABASE_TIMEOUT (or
 * DATABASE_UNAVAILABLE) and is not applied later: statements time out and their connection is closed
 * (the server rolls back what it held), and a COMMIT the database reaches after the deadline is
 * refused by it.
 */
export async function withConfigChange<T>(
  store: ConfigStore,
  change: (manager: EntityManager) => Promise<{ result: T; changed: boolean; known?: KnownChange }>,
): Promise<T> {
  if (store.enclosing) {
    const outcome = await change(store.enclosing.manager);
    if (outcome.changed) store.enclosing.changed = true;
    return outcome.result;
  }
  const timeoutMs = store.changeTimeoutMs ?? DEFAULT_DATABASE_TIMEOUTS.statementMs;
  const deadline = performance.now() + timeoutMs;
  let committed: { version: string; known: KnownChange | undefined } | undefined;
  let result: T;
  try {
    result = await store.dataSource.transaction(async (manager) => {
      const outcome = await change(manager);
      if (outcome.changed) {
        const version = await bumpRevision(manager, store.changes, deadline - performance.now());
        committed = { version, known: outcome.known };
      }
      if (performance.now() > deadline) throw new ChangeTimeout(timeoutMs);
      return outcome.result;
    });
  } catch (error) {
    if (error instanceof ChangeTimeout)
      throw databaseFailure(error, `the change took longer than ${timeoutMs} ms and was not applied`)!;
    const duringCommit = error instanceof QueryFailedError && error.query === 'COMMIT';
    const outcome = duringCommit
      ? `the change was applied only if the database committed it within ${timeoutMs} ms ` +
        '(it never commits it later); read it back before retrying'
      : 'the change was not applied';
    throw databaseFailure(error, outcome) ?? error;
  }
  if (committed !== undefined) store.changes.committed(committed.version, committed.known);
  return result;
}

/** The change ran past its deadline on this side; thrown inside the transaction, it rolls it back. */
class ChangeTimeout extends Error {
  readonly code = '57014';

  constructor(timeoutMs: number) {
    super(`the configuration change took longer than ${timeoutMs} ms`);
  }
}
