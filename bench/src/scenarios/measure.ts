import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import type { LoadTarget, Operation } from '../load/protocol.ts';
import { mergeMeasurements, type LoadGenerator, type Measurement, type Probe } from '../load/run-load.ts';
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

/** One target, each row in one pass. */
export function measureTarget(
  load: LoadGenerator,
  target: MeasureTarget,
  profile: Profile,
  progress: Progress,
  concurrencies: readonly number[] = profile.concurrencies,
): Promise<RoundTripRow[]> {
  return measureInTurns(load, [target], profile, progress, { passes: 1, concurrencies });
}

/**
 * Targets of one upstream measured in turns: each row's calls are split into `passes` runs (the
 * profile's, unless given), and the targets take them round-robin (direct, floor, gateway, direct, …),
 * so a slow spell of a shared, noisy machine falls on all of them rather than on whichever row it
 * happened to meet; each row is its passes merged. Every pass opens its own session and warms it
 * up with the row's warm-up calls.
 */
export async function measureInTurns(
  load: Pick<LoadGenerator, 'run'>,
  targets: readonly MeasureTarget[],
  profile: Profile,
  progress: Progress,
  {
    passes = profile.passes,
    concurrencies = profile.concurrencies,
  }: { passes?: number; concurrencies?: readonly number[] } = {},
): Promise<RoundTripRow[]> {
  const rows = new Map<MeasureTarget, RoundTripRow[]>(targets.map((t) => [t, []]));
  for (const driver of ['sdk', 'lean'] as const) {
    for (const concurrency of concurrencies) {
      const parts = new Map<MeasureTarget, Measurement[] | Error>(targets.map((t) => [t, []]));
      for (let pass = 0; pass < passes; pass++) {
        for (const target of targets) {
          const done = parts.get(target)!;
          if (done instanceof Error) continue;
          const { calls } = callsFor(profile, driver, concurrency, target.operation.method);
          try {
            // The time-based warm-up brings a cold process to speed; later passes find it warm.
            done.push(await runPass(load, target, profile, driver, concurrency, Math.ceil(calls / passes), pass > 0));
          } catch (error) {
            parts.set(target, error instanceof Error ? error : new Error(String(error)));
          }
        }
      }
      for (const target of targets)
        rows.get(target)!.push(rowOf(target, driver, concurrency, parts.get(target)!, progress));
    }
  }
  return targets.flatMap((t) => rows.get(t)!);
}

/** One run of `calls` measured calls (after the warm-up) from the load process. */
function runPass(
  load: Pick<LoadGenerator, 'run'>,
  target: MeasureTarget,
  profile: Profile,
  driver: 'sdk' | 'lean',
  concurrency: number,
  calls: number,
  warm = false,
): Promise<Measurement> {
  const { warmup, minWarmupMs: cold } = callsFor(profile, driver, concurrency, target.operation.method);
  const minWarmupMs = warm ? 0 : cold;
  return load.run(
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
    {
      ...(target.pid === undefined ? {} : { pid: target.pid }),
      probes: target.probes ?? [],
      timeoutMs: profile.rowTimeoutMs,
    },
  );
}

/** The row of a target's measurement (its passes merged), or of the error that stopped it. */
function rowOf(
  target: MeasureTarget,
  driver: 'sdk' | 'lean',
  concurrency: number,
  outcome: readonly Measurement[] | Error,
  progress: Progress,
): RoundTripRow {
  const row: RoundTripRow = {
    method: target.operation.method,
    upstream: target.upstream,
    path: target.path,
    driver,
    concurrency,
  };
  if (target.upstreamTools !== undefined) row.upstreamTools = target.upstreamTools;
  if (target.keysConfigured !== undefined) row.keysConfigured = target.keysConfigured;
  const tools = target.upstreamTools === undefined ? '' : ` (${target.upstreamTools} tools)`;
  const label =
    `${target.operation.method}${tools}, ${target.upstream} upstream via ${target.path}, ${driver} ` +
    `client, c=${concurrency}`;
  if (outcome instanceof Error) {
    row.failed = outcome.message.split('\n')[0]!;
    progress(`  ${label}: FAILED: ${row.failed}`);
    return row;
  }
  const m = mergeMeasurements(outcome);
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
  const passes = outcome.length > 1 ? ` in ${outcome.length} passes` : '';
  progress(
    `  ${label}: p50 ${m.latency.p50Ms.toFixed(3)} ms, ${Math.round(m.callsPerSec)} calls/s, ${m.calls} ` +
      `calls${passes}${m.truncated ? ' (time cap)' : ''}${m.errors ? `, ${m.errors} errors (${m.firstError})` : ''}`,
  );
  return row;
}

/**
 * Unmeasured load on a freshly started gateway before its first row: its CPU per call keeps falling
 * over its first tens of thousands of calls (JIT tiers), far longer than a row's warm-up, whereas the
 * direct servers have served rows before theirs. Lean c=32 on each target for `profile.gatewayWarmupMs`.
 */
export async function warmUpGateway(
  load: LoadGenerator,
  targets: readonly MeasureTarget[],
  profile: Profile,
  progress: Progress,
): Promise<void> {
  if (profile.gatewayWarmupMs <= 0) return;
  progress(
    `warming the gateway up (${targets.length} × ${profile.gatewayWarmupMs} ms of lean c=32 calls, not measured)…`,
  );
  for (const target of targets) {
    await load.run(
      {
        driver: 'lean',
        target: target.load,
        operation: target.operation,
        concurrency: 32,
        warmupCalls: 1_000,
        minWarmupMs: profile.gatewayWarmupMs,
        maxWarmupMs: profile.gatewayWarmupMs,
        calls: 1,
        maxMeasureMs: 1_000,
        protocolVersion: LATEST_PROTOCOL_VERSION,
      },
      { timeoutMs: profile.rowTimeoutMs },
    );
  }
}
