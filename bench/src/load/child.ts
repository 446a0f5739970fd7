import type { Driver } from './driver.ts';
import { openLeanHttp } from './lean-http.ts';
import { openLeanStdio } from './lean-stdio.ts';
import type { ChildMessage, LoadJob, ParentMessage } from './protocol.ts';
import { runCalls } from './run-calls.ts';
import { openSdk } from './sdk.ts';

/**
 * Entry point of the load-generator process (forked by run-load.ts), kept for the whole run so the
 * SDK is loaded once. For each `job`: open a session, warm up, report `ready`, wait for `go` (the
 * parent samples the CPU of the process under test at the edges of the measured phase), measure,
 * report the result, wait for `release`, close the session.
 */

const send = (message: ChildMessage) => new Promise<void>((done) => process.send!(message, () => done()));

const inbox: ParentMessage[] = [];
const waiters: Array<() => void> = [];
process.on('message', (m: ParentMessage) => {
  inbox.push(m);
  waiters.splice(0).forEach((wake) => wake());
});
process.on('disconnect', () => process.exit(0));

async function next<T extends ParentMessage['type']>(
  type: T,
  timeoutMs?: number,
): Promise<Extract<ParentMessage, { type: T }> | undefined> {
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
  for (;;) {
    const index = inbox.findIndex((m) => m.type === type);
    if (index >= 0) return inbox.splice(index, 1)[0] as Extract<ParentMessage, { type: T }>;
    if (Date.now() >= deadline) return undefined;
    await new Promise<void>((wake) => {
      waiters.push(wake);
      if (deadline !== Infinity) setTimeout(wake, deadline - Date.now());
    });
  }
}

async function open(job: LoadJob): Promise<Driver> {
  if (job.driver === 'sdk') return openSdk(job.target, job.operation);
  if (job.target.transport === 'http')
    return openLeanHttp(job.target.url, job.target.headers, job.concurrency, job.operation, job.protocolVersion);
  return openLeanStdio(job.target.command, job.target.args, job.operation, job.protocolVersion);
}

async function runJob(job: LoadJob): Promise<void> {
  const driver = await open(job);
  try {
    let seq = 0;
    if (job.warmupCalls > 0) {
      const started = performance.now();
      const elapsed = () => performance.now() - started;
      do {
        const warm = await runCalls(
          job.warmupCalls,
          job.concurrency,
          job.maxWarmupMs - elapsed(),
          (n) => driver.call(seq + n),
          job.ratePerSec,
        );
        seq += warm.completed;
        if (warm.errors === warm.completed) throw new Error(`every warm-up call failed: ${warm.firstError}`);
      } while (elapsed() < (job.minWarmupMs ?? 0) && elapsed() < job.maxWarmupMs);
    }
    await send({ type: 'ready', ...(driver.serverPid === undefined ? {} : { serverPid: driver.serverPid }) });
    await next('go');
    const cpuBefore = process.cpuUsage();
    const run = await runCalls(
      job.calls,
      job.concurrency,
      job.maxMeasureMs,
      (n) => driver.call(seq + n),
      job.ratePerSec,
    );
    const cpu = process.cpuUsage(cpuBefore);
    await send({
      type: 'result',
      result: {
        calls: run.completed,
        truncated: run.truncated,
        errors: run.errors,
        ...(run.firstError === undefined ? {} : { firstError: run.firstError }),
        wallMs: run.wallMs,
        latenciesMs: Array.from(run.latenciesMs),
        clientCpuMs: (cpu.user + cpu.system) / 1000,
        ...(driver.protocolVersion === undefined ? {} : { protocolVersion: driver.protocolVersion }),
      },
    });
    // Closing the session may stop the server (a proxy's per-session stdio child), so wait until the
    // parent has taken its after-samples.
    await next('release', 10_000);
  } finally {
    await driver.close().catch(() => {});
  }
}

for (;;) {
  const message = await next('job');
  if (!message) continue;
  try {
    await runJob(message.job);
  } catch (error) {
    await send({ type: 'failed', error: error instanceof Error ? error.message : String(error) });
  }
  // Drop what was meant for the finished job; a next job may already be waiting.
  for (let i = inbox.length - 1; i >= 0; i--) if (inbox[i]!.type !== 'job') inbox.splice(i, 1);
}
