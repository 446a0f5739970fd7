/**
 * `tsx bench/src/code-mode-sandbox.ts`: code mode's two speed targets, measured in one process.
 *  - sandbox start from a warm pool: `run_script` of `return 1` straight on the pool (dispatch to a
 *    worker, new QuickJS runtime and context, prelude, evaluation, result back), p50 and p90;
 *  - nested tool calls per second to a stdio upstream (server-everything `echo`): one script making
 *    N calls in sequence and N at once, each through the node's whole pipeline (server.run), beside
 *    the same calls made directly through server.run without a sandbox.
 * Prints one JSON object; nothing is written. Noisy on a shared machine: compare rows of one run.
 */
import { randomBytes } from 'node:crypto';
import { createLogger } from '../../common/src/index.ts';
import { DEFAULT_SANDBOX_LIMITS, SandboxPool } from '../../data-plane/src/code-mode/sandbox-pool.ts';
import { AppliedConfig, hashSecret } from '../../data-plane/src/config/applied-config.ts';
import { createDataPlaneServer } from '../../data-plane/src/http/server.ts';
import type { Operation, Outcome } from '../../data-plane/src/pipeline/operation.ts';
import { signalCancellation } from '../../data-plane/src/upstream/cancellation.ts';
import { UpstreamPool } from '../../data-plane/src/upstream/upstream-pool.ts';
import { CodeMode, Transport, UpstreamConfig } from '../../proto/gen/portcullis/v1/config.ts';
import { EVERYTHING } from './targets/upstream.ts';

const CALLS = Number(process.env['CODE_MODE_BENCH_CALLS'] ?? 5000);
const STARTS = 2000;

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function main(): Promise<void> {
  const logger = createLogger({ level: 'silent' });
  const sandbox = new SandboxPool({
    workers: 1,
    limits: { ...DEFAULT_SANDBOX_LIMITS, timeMs: 120_000, maxToolCalls: CALLS },
    maxQueued: 4,
  });
  await sandbox.warm();
  const noop = () => Promise.resolve(null);
  for (let i = 0; i < 200; i++) await sandbox.run('return 1', noop);
  const starts: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    const t = performance.now();
    await sandbox.run('return 1', noop);
    starts.push(performance.now() - t);
  }

  const pool = new UpstreamPool({
    clientInfo: { name: 'bench', version: '0' },
    defaults: { connectTimeoutMs: 15_000, callTimeoutMs: 15_000, healthIntervalMs: 60_000, healthFailureThreshold: 3 },
    logger,
  });
  const upstream = UpstreamConfig.fromPartial({
    id: 'u1',
    name: 'ev',
    transport: Transport.TRANSPORT_STDIO,
    command: process.execPath,
    args: [EVERYTHING, 'stdio'],
    configHash: 'h',
    codeMode: true,
  });
  pool.apply([upstream]);
  const secret = `pcs_${randomBytes(24).toString('base64url')}`;
  const config = AppliedConfig.fromSnapshot({
    version: '1',
    upstreams: [upstream],
    virtualKeys: [
      {
        id: 'k',
        name: 'k',
        secretSha256: Buffer.from(hashSecret(secret), 'hex'),
        teamId: '',
        allowedTools: ['*'],
        codeMode: CodeMode.CODE_MODE_ON,
      },
    ],
    sessionKeys: [{ id: 's', secret: randomBytes(32) }],
    executionPolicies: [],
  });
  const server = createDataPlaneServer({
    getConfig: () => config,
    upstreams: pool,
    logger,
    maxBodyBytes: 1 << 20,
    serverInfo: { name: 'bench', version: '0' },
    sandbox,
  });
  const operation = (name: string, args: Record<string, unknown>): Operation => ({
    id: 1,
    method: 'tools/call',
    params: { name, arguments: args },
    principal: undefined,
    keyId: 'k',
    sessionKeys: config.sessionKeys,
    cancellation: signalCancellation(new AbortController().signal),
    receivedAt: performance.now(),
  });
  const run = (name: string, args: Record<string, unknown>): Promise<Outcome> => server.run(operation(name, args));
  const ready = performance.now();
  while (pool.find('tools', 'ev__echo') === undefined) {
    if (performance.now() - ready > 30_000) throw new Error('server-everything did not come up within 30 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  for (let i = 0; i < 200; i++) {
    const outcome = await run('ev__echo', { message: 'warm' });
    if (outcome.kind !== 'result' || outcome.unavailable) throw new Error(`echo failed: ${JSON.stringify(outcome)}`);
  }

  const rate = async (what: () => Promise<unknown>): Promise<number> => {
    const t = performance.now();
    await what();
    return Math.round(CALLS / ((performance.now() - t) / 1000));
  };
  const script = async (code: string) => {
    const outcome = await run('run_script', { code });
    const result = outcome.kind === 'result' ? outcome.result : undefined;
    if (result === undefined || result['isError'] === true)
      throw new Error(`script failed: ${JSON.stringify(outcome)}`);
  };
  const rows = {
    directSequential: await rate(async () => {
      for (let i = 0; i < CALLS; i++) await run('ev__echo', { message: 'x' });
    }),
    directConcurrent: await rate(() =>
      Promise.all(Array.from({ length: CALLS }, () => run('ev__echo', { message: 'x' }))),
    ),
    scriptSequential: await rate(() =>
      script(`for (let i = 0; i < ${CALLS}; i++) await tools.ev.echo({ message: "x" }); return 1;`),
    ),
    scriptConcurrent: await rate(() =>
      script(`await Promise.all(Array.from({ length: ${CALLS} }, () => tools.ev.echo({ message: "x" }))); return 1;`),
    ),
  };
  process.stdout.write(
    `${JSON.stringify(
      {
        sandboxStartMs: { p50: quantile(starts, 0.5), p90: quantile(starts, 0.9), n: STARTS },
        nestedCallsPerSecond: rows,
        calls: CALLS,
      },
      null,
      2,
    )}\n`,
  );
  await server.close();
  await Promise.all([pool.close(), sandbox.close()]);
}

await main();
