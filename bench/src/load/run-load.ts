import { resolve } from 'node:path';
import { cpuBetween, sampleCpu, type CpuSample } from '../cpu.ts';
import { ManagedProcess } from '../processes.ts';
import { summarize, type LatencySummary } from '../stats.ts';
import type { ChildMessage, LoadJob, LoadResult } from './protocol.ts';

/**
 * Runs one load job in its own child process, so the process under test never shares a CPU budget
 * or an event loop with the load, and samples the CPU of the process under test (and of its
 * descendants) exactly around the measured phase.
 */

const CHILD = resolve(import.meta.dirname, 'child.ts');
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
  calls: number;
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

export interface RunLoadOptions {
  /** Pid of the process under test; for stdio targets the child reports the server it spawned. */
  pid?: number;
  probes?: Probe[];
  timeoutMs: number;
}

export async function runLoad(job: LoadJob, options: RunLoadOptions): Promise<Measurement> {
  const proc = new ManagedProcess(`load generator (${job.driver}, c=${job.concurrency})`, process.execPath, ['--import', TSX, CHILD, JSON.stringify(job)], {
    ipc: true,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const outcome = await new Promise<{ result: LoadResult; cpu: ReturnType<typeof cpuBetween> | undefined; probes: Record<string, number | string> }>(
      (resolveRun, reject) => {
        timer = setTimeout(() => reject(new Error(`load job timed out after ${options.timeoutMs} ms`)), options.timeoutMs);
        let pid = options.pid;
        let before: CpuSample | undefined;
        let reported = false;
        proc.child.on('message', (message: ChildMessage) => {
          if (message.type !== 'ready') reported = true;
          void (async () => {
            if (message.type === 'ready') {
              pid ??= message.serverPid;
              for (const probe of options.probes ?? []) await probe.before();
              before = pid === undefined ? undefined : sampleCpu(pid);
              proc.child.send({ type: 'go' });
            } else if (message.type === 'result') {
              const cpu = pid !== undefined && before ? cpuBetween(before, sampleCpu(pid)) : undefined;
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
        });
        proc.child.once('exit', (code) => !reported && reject(new Error(`load generator exited (${code}) before reporting:\n${proc.output}`)));
      },
    );
    const { result, cpu } = outcome;
    const latency = summarize(Float64Array.from(result.latenciesMs));
    const measurement: Measurement = {
      job,
      latency,
      calls: result.calls,
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
  } finally {
    clearTimeout(timer);
    await proc.stop(1_000);
  }
}
