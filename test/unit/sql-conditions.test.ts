import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SqlConditions } from '../../control-plane/src/db/sql-conditions.ts';

describe('SqlConditions', () => {
  it('numbers each term after the parameters before it and leaves out absent values', () => {
    const conditions = new SqlConditions();
    conditions.add('time >= ?', new Date(0));
    conditions.add('kind = ?', undefined);
    conditions.add('status = ?', null);
    conditions.add('key_id = ?', 'k');
    conditions.add('tool = ?', '');
    assert.deepEqual(conditions.where, ['time >= $1', 'key_id = $2', 'tool = $3']);
    assert.deepEqual(conditions.params, [new Date(0), 'k', '']);
  });

  it('refuses a term without exactly one placeholder, even when its value is absent', () => {
    const conditions = new SqlConditions();
    assert.throws(() => conditions.add('time BETWEEN ? AND ?', 1), /must hold exactly one \?/);
    assert.throws(() => conditions.add("tags ? 'x' AND kind = ?", undefined), /must hold exactly one \?/);
    assert.throws(() => conditions.add('kind = kind', 'k'), /must hold exactly one \?/);
    assert.deepEqual(conditions.where, []);
    assert.deepEqual(conditions.params, []);
  });
});
