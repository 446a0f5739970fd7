import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCalls } from '../../bench/src/load/run-calls.ts';

test('a paced run starts call n no sooner than n / rate seconds after the first', async () => {
  const startedAt: number[] = [];
  const begin = performance.now();
  const run = await runCalls(
    21,
    4,
    10_000,
    async (seq) => {
      startedAt[seq] = performance.now() - begin;
      return { ok: true };
    },
    100,
  );
  assert.equal(run.completed, 21);
  // Call 20 is due 200 ms in; unpaced, all 21 (4 in flight, answering at once) took well under 10 ms. The slack:
  // a wait under 1 ms is not made, and a timer may fire a little before performance.now() says it is due.
  assert.ok(startedAt[20]! >= 197, `call 20 started at ${startedAt[20]} ms`);
  for (let seq = 0; seq < 21; seq++) assert.ok(startedAt[seq]! >= seq * 10 - 3, `call ${seq} at ${startedAt[seq]} ms`);
});

test('an unpaced run does not wait between calls', async () => {
  const run = await runCalls(200, 4, 10_000, async () => ({ ok: true }));
  assert.equal(run.completed, 200);
  assert.ok(run.wallMs < 150, `200 immediate calls took ${run.wallMs} ms`);
});
