/**
 * The terms of a WHERE clause with numbered parameters: `add('key_id = ?', value)` numbers the `?` after the
 * parameters already added, and leaves out a term whose value is absent (undefined or null), so an optional filter
 * costs its caller one line.
 */
export class SqlConditions {
  readonly where: string[] = [];
  readonly params: unknown[] = [];

  add(sql: string, value: unknown): void {
    if (value === undefined || value === null) return;
    this.params.push(value);
    this.where.push(sql.replace('?', `$${this.params.length}`));
  }
}
