/**
 * The terms of a WHERE clause with numbered parameters: `add('key_id = ?', value)` numbers the `?` after the
 * parameters already added, and leaves out a term whose value is absent (undefined or null), so an optional filter
 * costs its caller one line.
 */
export class SqlConditions {
  readonly where: string[] = [];
  readonly params: unknown[] = [];

  add(sql: string, value: unknown): void {
    // One placeholder, one value: a second `?` (PostgreSQL's jsonb key operator, or a term of two values) would
    // be sent to the database unnumbered.
    const at = sql.indexOf('?');
    if (at === -1 || sql.indexOf('?', at + 1) !== -1)
      throw new Error(`SqlConditions.add: "${sql}" must hold exactly one ?, for its one value`);
    if (value === undefined || value === null) return;
    this.params.push(value);
    this.where.push(`${sql.slice(0, at)}$${this.params.length}${sql.slice(at + 1)}`);
  }
}
