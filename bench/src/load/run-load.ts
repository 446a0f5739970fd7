import { resolve } from 'node:path';
import { cpuBetween, sampleCpu, type CpuSample } from '../cpu.ts';
import { BENCH_SRC, ManagedProcess } from '../processes.ts';
import { summarize, type LatencySummary } from '../stats.ts';
import type { ChildMessage, LoadJob, LoadResult } from './protocol.ts';

/**
 * The load generator: one child process, kept for the whole run, so the process under test never
 * shares a CPU budget or an event loop with the load. Each job's measured phase is bracketed by CPU
 * samples of the process under test (and of its descendants) and by any probes.
 */

const CHILD = resolve(BENCH_SRC, 'load/child.ts');
const TSX = import.meta.resolve('tsx');

/** Something else to sample at the edges of the measured phase (e.g. the gateway's /metrics). */
export interface Probe {
  readonly name: string;
  before(): Promise<void>;
  /** A figure (or figures) for the measured phase, given the number of calls in it. */
  after(calls: number): Promise<Record<string, number | string>>;
}

export interface Measurement {
  job: LoadJob;
  latency: LatencySummary;
  /** Every measured call's latency, in completion order (for merging passes). */
  latenciesMs: Float64Array;
  calls: number;
  /** The time cap stopped the measured phase before the job's call count. */
  truncated: boolean;
  errors: number;
  firstError?: string;
  wallMs: number;
  callsPerSec: number;
  /** CPU of the load generator process per measured call. */
  clientCpuPerCallMs: number;
  /** CPU of the process under test per call (the server, proxy or gateway). */
  cpuPerCallMs?: number;
  /** CPU of the descendants of the process under test per call (a proxy's stdio upstream). */
  childrenCpuPerCallMs?: number;
  protocolVersion?: string;
  probes: Record<string, number | string>;
}

export interface RunOptions {
  /** Pid of the process under test; for stdio targets the child reports the server it spawned. */
  pid?: number;
  probes?: Probe[];
  timeoutMs: number;
}

export class LoadGenerator {
  private proc: ManagedProcess | undefined;

  private spawn(): ManagedProcess {
    this.proc ??= new ManagedProcess('load generator', process.execPath, ['--import', TSX, CHILD], { ipc: true });
    return this.proc;
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    await proc?.stop(1_000);
  }

  async run(job: LoadJob, options: RunOptions): Promise<Measurement> {
    const proc = this.spawn();
    let timer: NodeJS.Timeout | undefined;
    let onMessage: ((message: ChildMessage) => void) | undefined;
    let onExit: (() => void) | undefined;
    try {
      const outcome = await new Promise<{
        result: LoadResult;
        cpu: ReturnType<typeof cpuBetween> | undefined;
        probes: Record<string, number | string>;
      }>((resolveRun, reject) => {
        timer = setTimeout(
          () => reject(new Error(`load job timed out after ${options.timeoutMs} ms`)),
          options.timeoutMs,
        );
        let pid = options.pid;
        let before: CpuSample | undefined;
        onMessage = (message: ChildMessage) => {
          void (async () => {
            if (message.type === 'ready') {
              pid ??= message.serverPid;
              for (const probe of options.probes ?? []) await probe.before();
              before = pid === undefined ? undefined : sampleCpu(pid);
              proc.child.send({ type: 'go' });
            } else if (message.type === 'result') {
              const cpu = pid !== undefined && before ? cpuBetween(before, sampleCpu(pid)) : undefined;
              proc.child.send({ type: 'release' });
              const probes: Record<string, number | string> = {};
              for (const probe of options.probes ?? []) {
                try {
                  Object.assign(probes, await probe.after(message.result.calls));
                } catch (error) {
                  probes[probe.name] = `unavailable: ${error instanceof Error ? error.message : String(error)}`;
                }
              }
              resolveRun({ result: message.result, cpu, probes });
            } else if (message.type === 'failed') {
              reject(new Error(message.error));
            }
          })().catch(reject);
        };
        onExit = () => reject(new Error(`load generator exited:\n${proc.output}`));
        proc.child.on('message', onMessage);
        proc.child.once('exit', onExit);
        proc.child.send({ type: 'job', job });
      });
      const { result, cpu } = outcome;
      const latenciesMs = Float64Array.from(result.latenciesMs);
      const measurement: Measurement = {
        job,
        latency: summarize(latenciesMs),
        latenciesMs,
        calls: result.calls,
        truncated: result.truncated,
        errors: result.errors,
        wallMs: result.wallMs,
        callsPerSec: (result.calls / result.wallMs) * 1000,
        clientCpuPerCallMs: result.clientCpuMs / result.calls,
        probes: outcome.probes,
      };
      if (result.firstError !== undefined) measurement.firstError = result.firstError;
      if (result.protocolVersion !== undefined) measurement.protocolVersion = result.protocolVersion;
      if (cpu?.selfMs !== undefined) measurement.cpuPerCallMs = cpu.selfMs / result.calls;
      if (cpu) measurement.childrenCpuPerCallMs = cpu.childrenMs / result.calls;
      return measurement;
    } catch (error) {
      // The child may be stuck in the job: start a fresh one for the next.
      await this.stop();
      throw error;
    } finally {
      clearTimeout(timer);
      if (onMessage) proc.child.off('message', onMessage);
      if (onExit) proc.child.off('exit', onExit);
    }
  }
}

/**
 * Several measurements of one row (passes taken in turns with other targets) as one: latencies
 * pooled, calls, time and CPU summed, probe figures averaged weighted by calls (exact for means; for
 * a probe's percentiles, the weighted mean of each pass's).
 */
export function mergeMeasurements(parts: readonly Measurement[]): Measurement {
  const [first] = parts;
  if (first === undefined) throw new Error('nothing to merge');
  if (parts.length === 1) return first;
  const calls = parts.reduce((sum, m) => sum + m.calls, 0);
  const wallMs = parts.reduce((sum, m) => sum + m.wallMs, 0);
  const latenciesMs = new Float64Array(parts.reduce((sum, m) => sum + m.latenciesMs.length, 0));
  let offset = 0;
  for (const m of parts) {
    latenciesMs.set(m.latenciesMs, offset);
    offset += m.latenciesMs.length;
  }
  const perCall = (pick: (m: Measurement) => number | undefined): number | undefined =>
    parts.every((m) => pick(m) !== undefined)
      ? parts.reduce((sum, m) => sum + pick(m)! * m.calls, 0) / calls
      : undefined;
  const probes: Record<string, number | string> = {};
  for (const name of new Set(parts.flatMap((m) => Object.keys(m.probes)))) {
    const values = parts.map((m) => m.probes[name]);
    probes[name] = values.every((v) => typeof v === 'number')
      ? parts.reduce((sum, m, i) => sum + (values[i] as number) * m.calls, 0) / calls
      : String(values.find((v) => typeof v === 'string') ?? '');
  }
  const merged: Measurement = {
    job: { ...first.job, calls: parts.reduce((sum, m) => sum + m.job.calls, 0) },
    latency: summarize(latenciesMs),
    latenciesMs,
    calls,
    truncated: parts.some((m) => m.truncated),
    errors: parts.reduce((sum, m) => sum + m.errors, 0),
    wallMs,
    callsPerSec: (calls / wallMs) * 1000,
    clientCpuPerCallMs: perCall((m) => m.clientCpuPerCallMs)!,
    probes,
  };
  const firstError = parts.find((m) => m.firstError !== undefined)?.firstError;
  if (firstError !== undefined) merged.firstError = firstError;
  if (first.protocolVersion !== undefined) merged.protocolVersion = first.protocolVersion;
  const cpu = perCall((m) => m.cpuPerCallMs);
  if (cpu !== undefined) merged.cpuPerCallMs = cpu;
  const children = perCall((m) => m.childrenCpuPerCallMs);
  if (children !== undefined) merged.childrenCpuPerCallMs = children;
  return merged;
}
