import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import type { LoadTarget, Operation } from '../load/protocol.ts';
import type { LoadGenerator, Probe } from '../load/run-load.ts';
import { callsFor, type Profile } from '../options.ts';
import type { PathKind, RoundTripRow, UpstreamKind } from '../results.ts';

/**
 * One target (the upstream itself, a peer proxy or the gateway) measured with each driver at each
 * concurrency: a fixed number of requests after a warm-up, from the separate load process.
 */

export interface MeasureTarget {
  upstream: UpstreamKind;
  path: PathKind;
  load: LoadTarget;
  /** What each request does, with names as this target exposes them (`echo` direct, `ev__echo` through the gateway). */
  operation: Operation;
  /** Tools the upstream offers, for the tools/list rows. */
  upstreamTools?: number;
  /** Virtual keys configured in the gateway while measured (gateway rows). */
  keysConfigured?: number;
  /** Process under test; unset for stdio targets, where the load process spawns the server itself. */
  pid?: number;
  probes?: Probe[];
}

export type Progress = (line: string) => void;

export async function measureTarget(
  load: LoadGenerator,
  target: MeasureTarget,
  profile: Profile,
  progress: Progress,
  concurrencies: readonly number[] = profile.concurrencies,
): Promise<RoundTripRow[]> {
  const rows: RoundTripRow[] = [];
  for (const driver of ['sdk', 'lean'] as const) {
    for (const concurrency of concurrencies) {
      const { calls, warmup, minWarmupMs } = callsFor(profile, driver, concurrency, target.operation.method);
      const row: RoundTripRow = { method: target.operation.method, upstream: target.upstream, path: target.path, driver, concurrency };
      if (target.upstreamTools !== undefined) row.upstreamTools = target.upstreamTools;
      if (target.keysConfigured !== undefined) row.keysConfigured = target.keysConfigured;
      const tools = target.upstreamTools === undefined ? '' : ` (${target.upstreamTools} tools)`;
      const label = `${target.operation.method}${tools}, ${target.upstream} upstream via ${target.path}, ${driver} client, c=${concurrency}`;
      try {
        const m = await load.run(
          {
            driver,
            target: target.load,
            operation: target.operation,
            concurrency,
            warmupCalls: warmup,
            minWarmupMs,
            calls,
            maxMeasureMs: profile.maxMeasureMs,
            maxWarmupMs: profile.maxWarmupMs,
            protocolVersion: LATEST_PROTOCOL_VERSION,
          },
          { ...(target.pid === undefined ? {} : { pid: target.pid }), probes: target.probes ?? [], timeoutMs: profile.rowTimeoutMs },
        );
        Object.assign(row, {
          calls: m.calls,
          truncated: m.truncated,
          errors: m.errors,
          p50Ms: m.latency.p50Ms,
          p99Ms: m.latency.p99Ms,
          meanMs: m.latency.meanMs,
          callsPerSec: m.callsPerSec,
          clientCpuPerCallMs: m.clientCpuPerCallMs,
        });
        if (m.firstError !== undefined) row.firstError = m.firstError;
        if (m.cpuPerCallMs !== undefined) row.cpuPerCallMs = m.cpuPerCallMs;
        if (m.childrenCpuPerCallMs !== undefined) row.childrenCpuPerCallMs = m.childrenCpuPerCallMs;
        if (m.protocolVersion !== undefined) row.protocolVersion = m.protocolVersion;
        if (Object.keys(m.probes).length) row.extra = m.probes;
        progress(`  ${label}: p50 ${m.latency.p50Ms.toFixed(3)} ms, ${Math.round(m.callsPerSec)} calls/s, ${m.calls} calls${m.truncated ? ' (time cap)' : ''}${m.errors ? `, ${m.errors} errors (${m.firstError})` : ''}`);
      } catch (error) {
        row.failed = error instanceof Error ? error.message.split('\n')[0]! : String(error);
        progress(`  ${label}: FAILED: ${row.failed}`);
      }
      rows.push(row);
    }
  }
  return rows;
}
