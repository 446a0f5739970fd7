import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isoTime } from '../../control-plane/src/services/iso-time.ts';

describe('isoTime', () => {
  it('writes what Date#toISOString writes', () => {
    const day = 24 * 60 * 60 * 1000;
    const times = [
      0,
      1,
      999,
      1000,
      59_999,
      3_599_999,
      day - 1,
      day,
      Date.UTC(2024, 1, 29, 23, 59, 59, 999),
      Date.UTC(2026, 11, 4, 13, 5, 7, 42),
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      Date.UTC(10000, 0, 1),
      -1,
      -day - 1,
      1.5,
    ];
    let seed = 7;
    for (let i = 0; i < 5000; i++) {
      seed = (seed * 48_271) % 2_147_483_647;
      times.push(Date.UTC(2026, 0, 1) + seed * 37, seed * 123_457);
    }
    for (const ms of times) assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  });

  it('is right again after a day change and back', () => {
    const a = Date.UTC(2026, 11, 4, 23, 59, 59, 999);
    assert.equal(isoTime(a), '2026-12-04T23:59:59.999Z');
    assert.equal(isoTime(a + 1), '2026-12-05T00:00:00.000Z');
    assert.equal(isoTime(a), '2026-12-04T23:59:59.999Z');
  });
});
