import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, backoffDelay } from '../../common/src/index.ts';

describe('backoff', () => {
  const policy = { baseMs: 100, maxMs: 1_000 };

  test('each step doubles up to the ceiling, jittered between half and all of it', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 40].map((n) => backoffDelay(policy, n, () => 1)),
      [100, 200, 400, 800, 1_000, 1_000],
    );
    assert.deepEqual(
      [0, 1, 2, 3, 4, 40].map((n) => backoffDelay(policy, n, () => 0)),
      [50, 100, 200, 400, 500, 500],
    );
    for (let i = 0; i < 100; i += 1) {
      const delay = backoffDelay(policy, 2);
      assert.ok(delay >= 200 && delay <= 400, String(delay));
    }
  });

  test('a Backoff counts its attempts, may use another policy for one, and starts over on reset', () => {
    const backoff = new Backoff(policy);
    assert.ok(backoff.next() <= 100);
    assert.ok(backoff.next() <= 200);
    assert.ok(backoff.next({ baseMs: 10_000, maxMs: 60_000 }) >= 20_000, 'the third attempt under a slower policy');
    assert.equal(backoff.attempts, 3);
    backoff.reset();
    assert.equal(backoff.attempts, 0);
    assert.ok(backoff.next() <= 100);
  });
});
