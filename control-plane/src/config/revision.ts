/**
 * The configuration revision: one row, `config_revision`, moved on by one per committed change
 * (see `withConfigChange`). This is the one place that reads it.
 */

/** The revision as text, as a scalar subquery: a larger statement reads it in its own snapshot. */
export const REVISION_SQL = `(SELECT version::text FROM config_revision WHERE id = 1)`;

/** The newest committed revision. */
export async function currentRevision(db: { query(sql: string): Promise<unknown> }): Promise<string> {
  const rows = (await db.query(`SELECT ${REVISION_SQL} AS version`)) as Array<{ version: string | null }>;
  const version = rows[0]?.version;
  if (version === undefined || version === null)
    throw new Error('config_revision row is missing; the migrations did not run');
  return version;
}
