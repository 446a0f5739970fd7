import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deeperThan, MAX_JSON_DEPTH, parseRequestJson } from '../../data-plane/src/http/request-body.ts';

const nested = (depth: number, open = '[', close = ']') => `${open.repeat(depth)}${close.repeat(depth)}`;

describe('request JSON depth', () => {
  it('takes JSON nested up to the limit and refuses one level more, in arrays and objects', () => {
    assert.deepEqual(parseRequestJson(nested(MAX_JSON_DEPTH)).ok, true);
    assert.deepEqual(parseRequestJson(nested(MAX_JSON_DEPTH + 1)), { ok: false, tooDeep: true });
    const objects = `${'{"a":'.repeat(MAX_JSON_DEPTH + 1)}1${'}'.repeat(MAX_JSON_DEPTH + 1)}`;
    assert.deepEqual(parseRequestJson(objects), { ok: false, tooDeep: true });
    assert.deepEqual(parseRequestJson(nested(100_000)), { ok: false, tooDeep: true }, 'far deeper, no stack overflow');
  });

  it('counts the deepest branch, not the number of values, and tells invalid JSON apart', () => {
    const wide = JSON.stringify({ params: Array.from({ length: 5_000 }, (_, i) => ({ i, tags: [[i]] })) });
    assert.equal(parseRequestJson(wide).ok, true);
    assert.equal(deeperThan({ a: [{ b: [1] }] }, 4), false);
    assert.equal(deeperThan({ a: [{ b: [[1]] }] }, 4), true);
    assert.equal(deeperThan('text', 0), false);
    assert.deepEqual(parseRequestJson('{"unterminated'), { ok: false, tooDeep: false });
  });
});
