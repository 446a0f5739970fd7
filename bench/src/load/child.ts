import type { Driver } from './driver.ts';
import { openLeanHttp } from './lean-http.ts';
import { openLeanStdio } from './lean-stdio.ts';
import type { ChildMessage, LoadJob, ParentMessage } from './protocol.ts';
import { runCalls } from './run-calls.ts';
import { openSdk } from './sdk.ts';

/**
 * Entry point of a load-generator child process (forked by run-load.ts). The job comes as JSON in
 * argv[2]. The child opens a session, warms up, reports `ready`, waits for `go` (so the parent can take
 * its CPU samples at the edge of the measured phase), measures, reports the result and exits.
 */

const send = (message: ChildMessage) => new Promise<void>((done) => process.send!(message, () => done()));

async function open(job: LoadJob): Promise<Driver> {
  if (job.driver === 'sdk') return openSdk(job.target, job.tool);
  if (job.target.transport === 'http') return openLeanHttp(job.target.url, job.target.headers, job.concurrency, job.tool, job.protocolVersion);
  return openLeanStdio(job.target.command, job.target.args, job.tool, job.protocolVersion);
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as LoadJob;
  const driver = await open(job);
  try {
    if (job.warmupCalls > 0) {
      const warm = await runCalls(job.warmupCalls, job.concurrency, (seq) => driver.call(seq));
      if (warm.errors === job.warmupCalls) throw new Error(`every warm-up call failed: ${warm.firstError}`);
    }
    const go = new Promise<void>((done) => process.once('message', (m: ParentMessage) => m.type === 'go' && done()));
    await send({ type: 'ready', ...(driver.serverPid === undefined ? {} : { serverPid: driver.serverPid }) });
    await go;
    const cpuBefore = process.cpuUsage();
    const run = await runCalls(job.calls, job.concurrency, (seq) => driver.call(job.warmupCalls + seq));
    const cpu = process.cpuUsage(cpuBefore);
    await send({
      type: 'result',
      result: {
        calls: job.calls,
        errors: run.errors,
        ...(run.firstError === undefined ? {} : { firstError: run.firstError }),
        wallMs: run.wallMs,
        latenciesMs: Array.from(run.latenciesMs),
        clientCpuMs: (cpu.user + cpu.system) / 1000,
        ...(driver.protocolVersion === undefined ? {} : { protocolVersion: driver.protocolVersion }),
      },
    });
  } finally {
    await driver.close().catch(() => {});
  }
}

main().then(
  () => process.exit(0),
  async (error: unknown) => {
    await send({ type: 'failed', error: error instanceof Error ? error.message : String(error) }).catch(() => {});
    process.exit(1);
  },
);
