import { test } from 'node:test';
import assert from 'node:assert/strict';
import { msBetween, readProcessCpu, type ProcessCpu } from '../../bench/src/cpu.ts';

function spin(cpuMs: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= cpuMs) return;
  }
}

test('a reading measures CPU finer than the 10 ms clock tick (Linux)', () => {
  const usage = process.cpuUsage();
  const before = readProcessCpu(process.pid);
  spin(3);
  const after = readProcessCpu(process.pid);
  const usedMs = (process.cpuUsage(usage).user + process.cpuUsage(usage).system) / 1000;
  if (process.platform !== 'linux') {
    assert.equal(before, undefined, 'no /proc: no reading');
    return;
  }
  assert.ok(before !== undefined && after !== undefined);
  // Ticks read 0 or 10 ms here; the threads' run times read the 3 ms spun, within what getrusage saw around them.
  const readMs = msBetween(before, after);
  assert.ok(readMs >= 2.9 && readMs <= usedMs, `read ${readMs} ms for 3 ms spun (${usedMs} ms around the readings)`);
});

test('the ticks are used when a thread of the first reading has ended', () => {
  const before: ProcessCpu = {
    ms: 100,
    threadsNs: new Map([
      [1, 5e6],
      [2, 7e6],
    ]),
  };
  const sameThreads: ProcessCpu = {
    ms: 110,
    threadsNs: new Map([
      [1, 6.5e6],
      [2, 7.25e6],
      [3, 0.5e6],
    ]),
  };
  assert.equal(msBetween(before, sameThreads), 2.25, 'live threads, and a new one counted from 0');
  const threadGone: ProcessCpu = { ms: 110, threadsNs: new Map([[1, 6.5e6]]) };
  assert.equal(msBetween(before, threadGone), 10, "the gone thread's time is only in the ticks");
  const noSchedstat: ProcessCpu = { ms: 120, threadsNs: undefined };
  assert.equal(msBetween(before, noSchedstat), 20);
});
