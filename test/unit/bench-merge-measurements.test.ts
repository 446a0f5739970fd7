import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeMeasurements, type Measurement } from '../../bench/src/load/run-load.ts';
import type { LoadJob } from '../../bench/src/load/protocol.ts';
import { summarize } from '../../bench/src/stats.ts';

const job: LoadJob = {
  driver: 'sdk',
  target: { transport: 'http', url: 'http://127.0.0.1:1/mcp', headers: {} },
  operation: { method: 'tools/call', tool: 'echo' },
  concurrency: 1,
  warmupCalls: 1,
  calls: 2,
  maxMeasureMs: 1000,
  maxWarmupMs: 1000,
  protocolVersion: '2025-11-25',
};

function pass(latencies: number[], wallMs: number, cpuPerCallMs: number, probe: number): Measurement {
  const latenciesMs = Float64Array.from(latencies);
  return {
    job: { ...job, calls: latencies.length },
    latency: summarize(latenciesMs),
    latenciesMs,
    calls: latencies.length,
    truncated: false,
    errors: 0,
    wallMs,
    callsPerSec: (latencies.length / wallMs) * 1000,
    clientCpuPerCallMs: 1,
    cpuPerCallMs,
    probes: { gatewayAddedMeanMs: probe },
  };
}

test(`bench: passes of one row merge into one measurement (latencies pooled, calls and time summed, per-call figures \
weighted by calls)`, () => {
  const merged = mergeMeasurements([pass([1, 2], 10, 0.5, 0.1), pass([3, 4, 5, 6], 30, 0.2, 0.4)]);
  assert.equal(merged.calls, 6);
  assert.equal(merged.wallMs, 40);
  assert.equal(merged.callsPerSec, 150);
  assert.deepEqual([...merged.latenciesMs], [1, 2, 3, 4, 5, 6]);
  assert.equal(merged.latency.p50Ms, summarize(Float64Array.from([1, 2, 3, 4, 5, 6])).p50Ms);
  assert.ok(Math.abs(merged.cpuPerCallMs! - (0.5 * 2 + 0.2 * 4) / 6) < 1e-12);
  assert.ok(Math.abs((merged.probes['gatewayAddedMeanMs'] as number) - (0.1 * 2 + 0.4 * 4) / 6) < 1e-12);
  assert.equal(merged.job.calls, 6);
  const one = pass([7], 1, 0.1, 0.1);
  assert.equal(mergeMeasurements([one]), one, 'a single pass is the row');
});
