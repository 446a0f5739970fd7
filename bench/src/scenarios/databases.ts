import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The databases the config rows run on: the embedded PGlite (`npm start`) and the real PostgreSQL. */
export type DatabaseKind = 'embedded' | 'postgres';

/** Runs one statement on the real server (schema creation and removal). */
export async function adminQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Why the real PostgreSQL cannot be used, or undefined when it answers. */
export async function postgresProblem(url: string): Promise<string | undefined> {
  try {
    await adminQuery(url, 'SELECT 1');
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * The databases of `wanted` that can be measured: the real PostgreSQL only when it answers (else `note` says why,
 * naming `what`).
 */
export async function measurableDatabases(
  wanted: readonly DatabaseKind[],
  postgresUrl: string,
  what: string,
  note: (line: string) => void,
): Promise<DatabaseKind[]> {
  const usable: DatabaseKind[] = [];
  for (const database of wanted) {
    const problem = database === 'postgres' ? await postgresProblem(postgresUrl) : undefined;
    if (problem) note(`${what} on the real PostgreSQL not measured: ${postgresUrl} did not answer (${problem})`);
    else usable.push(database);
  }
  return usable;
}

/** A schema name of its own for one run (created by the caller, dropped afterwards). */
export function freshSchemaName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}
