import { loadavg } from 'node:os';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import type { DriverKind, LoadJob, LoadTarget } from '../load/protocol.ts';

/** What the probes (hot-path, floor-proxy) print first: a busy machine explains odd rows. */
export function loadAverageLine(): string {
  return `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`;
}

/** A probe's job: `calls` calls of `tool`, measured after an eighth as many for warm-up, within the probes' caps. */
export function toolCallJob(
  driver: DriverKind,
  target: LoadTarget,
  tool: string,
  concurrency: number,
  calls: number,
): LoadJob {
  return {
    driver,
    target,
    operation: { method: 'tools/call', tool },
    concurrency,
    warmupCalls: Math.ceil(calls / 8),
    calls,
    maxMeasureMs: 30_000,
    maxWarmupMs: 5_000,
    protocolVersion: LATEST_PROTOCOL_VERSION,
  };
}
