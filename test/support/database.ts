import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The real PostgreSQL tests run against (one schema per test). */
export const TEST_DATABASE_URL =
  process.env['PORTCULLIS_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestSchema {
  /** Connection URL of the test database. */
  readonly url: string;
  /** The schema's name (lower case, unique per call). */
  readonly name: string;
  /** Runs SQL with `search_path` set to the schema. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  /** Drops the schema and everything in it (idempotent). */
  drop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** One line instead of a connection stack: where the tests looked for PostgreSQL and how to start it. */
function databaseMissing(cause: unknown): Error {
  const where = new URL(TEST_DATABASE_URL);
  const error = new Error(
    `this test needs PostgreSQL at ${where.hostname}:${where.port || 5432} (${String(cause)}): start it ` +
      '(Debian/Ubuntu: `pg_ctlcluster <version> main start`, macOS: `brew services start postgresql`) ' +
      'or set PORTCULLIS_TEST_DATABASE_URL',
  );
  error.stack = error.message;
  return error;
}

/** PostgreSQL's `deadlock_detected`. */
const DEADLOCK = '40P01';
const DROP_ATTEMPTS = 5;

/**
 * `DROP SCHEMA … CASCADE`, again after a deadlock. It locks the schema's tables one by one, and a statement still
 * running there (a control plane's backend finishing its last query after the process was killed) may hold one it
 * has not reached and wait for one it has: PostgreSQL then aborts the drop, which waited first. Once that statement
 * ends, the drop goes through.
 */
async function dropSchema(name: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== DEADLOCK || attempt === DROP_ATTEMPTS) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  } finally {
    await client.end();
  }
}

/**
 * Creates a fresh, empty schema on the real server. Call `drop()` (or `await using`) when done;
 * the schema and everything in it is dropped with CASCADE.
 */
export async function createTestSchema(prefix = 'test'): Promise<TestSchema> {
  const unique = `${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const name = `${prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_${unique}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect().catch((error: unknown) => {
    throw databaseMissing(error);
  });
  try {
    await admin.query(`CREATE SCHEMA "${name}"`);
  } finally {
    await admin.end();
  }
  let dropped: Promise<void> | undefined;
  const drop = () => {
    dropped ??= dropSchema(name);
    return dropped;
  };
  return {
    url: TEST_DATABASE_URL,
    name,
    async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path="${name}"` });
      await client.connect();
      try {
        return (await client.query<R>(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    drop,
    [Symbol.asyncDispose]: drop,
  };
}
