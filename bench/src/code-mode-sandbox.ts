/**
 * `tsx bench/src/code-mode-sandbox.ts`: code mode's two speed targets, measured in one process.
 *  - sandbox start from a warm pool: `run_script` of `return 1` straight on the pool (dispatch to a
 *    worker, new QuickJS runtime and context, prelude, evaluation, result back), p50 and p90, each run sent
 *    when every worker is idle with its next sandbox made; and back to back (a run sent as the last one
 *    answered), with how many of those found no sandbox made ahead;
 *  - nested tool calls per second to a stdio upstream (server-everything `echo`), each through the
 *    node's whole pipeline (server.run) as `startDataPlane` builds it: audit record into a spool on
 *    disk (content logging on), metrics, a key rate limit, a price and a budget lease, the key's
 *    policy check. Rows: the upstream alone (a raw newline-JSON client on a stdio process of its own:
 *    the ceiling), the same calls through server.run without a sandbox, and scripts in the pool's two
 *    workers: one script looping or making every call at once, two scripts at once, and many short
 *    scripts of a few `Promise.all` rounds (what a model writes) from eight agents at once.
 * Each row gives calls/s and the CPU per call of this process (main and worker threads) and of the
 * upstream process. Prints one JSON object with the load average; nothing is kept. Noisy on a shared
 * machine: compare rows of one run. `CODE_MODE_BENCH_CALLS` (5000) calls per row,
 * `CODE_MODE_BENCH_ROWS=a,b` only those rows (for a profile), `CODE_MODE_BENCH_REPEAT` runs of each row (best kept).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../common/src/index.ts';
import { AuditContent } from '../../data-plane/src/audit/audit-content.ts';
import { AuditRecorder } from '../../data-plane/src/audit/audit-recorder.ts';
import { AuditSpool } from '../../data-plane/src/audit/audit-spool.ts';
import { DEFAULT_SANDBOX_LIMITS, SandboxPool } from '../../data-plane/src/code-mode/sandbox-pool.ts';
import { AppliedConfig, hashSecret } from '../../data-plane/src/config/applied-config.ts';
import { createDataPlaneServer } from '../../data-plane/src/http/server.ts';
import { DataPlaneMetrics } from '../../data-plane/src/observability/metrics.ts';
import type { Operation, Outcome } from '../../data-plane/src/pipeline/operation.ts';
import { BudgetLedger } from '../../data-plane/src/policy/budget-ledger.ts';
import { RateLimiter } from '../../data-plane/src/policy/rate-limits.ts';
import { signalCancellation } from '../../data-plane/src/upstream/cancellation.ts';
import { UpstreamPool } from '../../data-plane/src/upstream/upstream-pool.ts';
import { CodeMode, Transport, UpstreamConfig } from '../../proto/gen/portcullis/v1/config.ts';
import { processCpuMs, sampleCpu, cpuBetween } from './cpu.ts';
import { EVERYTHING } from './targets/upstream.ts';

const CALLS = Number(process.env['CODE_MODE_BENCH_CALLS'] ?? 5000);
const ROWS = process.env['CODE_MODE_BENCH_ROWS']?.split(',');
const REPEAT = Number(process.env['CODE_MODE_BENCH_REPEAT'] ?? 1);
const STARTS = ROWS === undefined ? 2000 : 0;
const WORKERS = 2;
/** The short scripts: rounds of this many calls at once, this many rounds a script. */
const FAN_OUT = 25;
const ROUNDS = 4;
/** Agents sending the short scripts at once. */
const AGENTS = 8;

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

interface Row {
  readonly callsPerSecond: number;
  /**
   * CPU ms per 1,000 calls (µs per call): this process (all its threads), its main thread alone (the pipeline, the
   * relay, the audit record: one thread, so 1,000,000 / mainThread calls/s is this node's ceiling), and the upstream.
   */
  readonly cpuMsPer1kCalls: { readonly node: number; readonly mainThread: number; readonly upstream: number };
}

/** CPU ms of the calling thread (/proc/thread-self/stat, utime + stime at 100 ticks/s); 0 off Linux. */
function threadCpuMs(): number {
  try {
    const fields = readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

/** The upstream alone: server-everything over stdio with a raw newline-delimited JSON-RPC client. */
async function upstreamAlone(): Promise<{ sequential: Row; window64: Row } | undefined> {
  if (ROWS !== undefined && !ROWS.includes('upstreamAlone')) return undefined;
  const child = spawn(process.execPath, [EVERYTHING, 'stdio'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const waiting = new Map<number, () => void>();
  let buffered = '';
  let nextId = 1;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buffered += chunk;
    for (let at = buffered.indexOf('\n'); at !== -1; at = buffered.indexOf('\n')) {
      const message = JSON.parse(buffered.slice(0, at)) as { id?: number };
      buffered = buffered.slice(at + 1);
      const settle = message.id === undefined ? undefined : waiting.get(message.id);
      if (settle !== undefined && message.id !== undefined) {
        waiting.delete(message.id);
        settle();
      }
    }
  });
  const request = (method: string, params: unknown) =>
    new Promise<void>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    });
  const clientInfo = { name: 'bench', version: '0' };
  await request('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo });
  child.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
  const echo = () => request('tools/call', { name: 'echo', arguments: { message: 'x' } });
  for (let i = 0; i < 1000; i++) await echo();
  const measure = async (what: () => Promise<unknown>): Promise<Row> => {
    const self = processCpuMs(process.pid) ?? 0;
    const main = threadCpuMs();
    const upstream = processCpuMs(child.pid!) ?? 0;
    const t = performance.now();
    await what();
    const seconds = (performance.now() - t) / 1000;
    return {
      callsPerSecond: Math.round(CALLS / seconds),
      cpuMsPer1kCalls: {
        node: round(((processCpuMs(process.pid) ?? 0) - self) / (CALLS / 1000)),
        mainThread: round((threadCpuMs() - main) / (CALLS / 1000)),
        upstream: round(((processCpuMs(child.pid!) ?? 0) - upstream) / (CALLS / 1000)),
      },
    };
  };
  const sequential = await measure(async () => {
    for (let i = 0; i < CALLS; i++) await echo();
  });
  let sent = 0;
  const window64 = await measure(() =>
    Promise.all(
      Array.from({ length: 64 }, async () => {
        while (sent++ < CALLS) await echo();
      }),
    ),
  );
  child.kill();
  return { sequential, window64 };
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

async function main(): Promise<void> {
  const logger = createLogger({ level: 'silent' });
  const ceiling = await upstreamAlone();
  const sandbox = new SandboxPool({
    workers: WORKERS,
    limits: { ...DEFAULT_SANDBOX_LIMITS, timeMs: 120_000, maxToolCalls: CALLS },
    maxQueued: 64,
  });
  await sandbox.warm();
  const noop = () => Promise.reject(new Error('return 1 makes no tool calls'));
  // A warm pool: every worker idle with its next sandbox made (what a script finds when the last one ended more than
  // a sandbox's making ago, ~0.6 ms). Back to back, the next script often arrives while a worker is still freeing
  // the last run and making the next sandbox: measured too, with how many starts had to wait for one.
  const starts: number[] = [];
  const backToBack: number[] = [];
  let coldBackToBack = 0;
  if (STARTS > 0) {
    for (let i = 0; i < 200; i++) await sandbox.run('return 1', noop);
    for (let i = 0; i < STARTS; i++) {
      while (sandbox.readyWorkers < WORKERS) await new Promise((resolve) => setTimeout(resolve, 1));
      const t = performance.now();
      await sandbox.run('return 1', noop);
      starts.push(performance.now() - t);
    }
    const cold = sandbox.coldStarts;
    for (let i = 0; i < STARTS; i++) {
      const t = performance.now();
      await sandbox.run('return 1', noop);
      backToBack.push(performance.now() - t);
    }
    coldBackToBack = sandbox.coldStarts - cold;
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
        rateLimits: { requestsPerMinute: 100_000_000, toolCallsPerMinute: 100_000_000, burst: 0 },
      },
    ],
    sessionKeys: [{ id: 's', secret: randomBytes(32) }],
    executionPolicies: [],
    prices: [{ upstreamId: 'u1', tool: '', priceMicros: 1 }],
    budgeted: ['key:k'],
  });
  const budgetLedger = new BudgetLedger(() => undefined);
  budgetLedger.apply([
    {
      budgetId: 'b',
      scope: 'key',
      ownerId: 'k',
      periodStartMs: 0,
      grantedMicros: Number.MAX_SAFE_INTEGER,
      periodEndMs: 0,
      ungrantedMicros: 0,
      spentMicros: 0,
    },
  ]);
  const spoolDir = await mkdtemp(join(tmpdir(), 'code-mode-bench-'));
  const spool = await AuditSpool.open({ dir: spoolDir, maxBytes: 1 << 30, logger });
  const server = createDataPlaneServer({
    getConfig: () => config,
    upstreams: pool,
    logger,
    maxBodyBytes: 1 << 20,
    serverInfo: { name: 'bench', version: '0' },
    sandbox,
    metrics: new DataPlaneMetrics(),
    rateLimiter: new RateLimiter(),
    budgetLedger,
    audit: new AuditRecorder({ node: 'bench', spool, content: new AuditContent(), whenFull: 'serve', logger }),
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
  for (let i = 0; i < 500; i++) {
    const outcome = await run('ev__echo', { message: 'warm' });
    if (outcome.kind !== 'result' || outcome.unavailable || outcome.result['isError'] === true)
      throw new Error(`echo failed: ${JSON.stringify(outcome)}`);
  }

  const measure = async (name: string, what: () => Promise<unknown>): Promise<Row | undefined> => {
    if (ROWS !== undefined && !ROWS.includes(name)) return undefined;
    let best: Row | undefined;
    for (let i = 0; i < REPEAT; i++) {
      const before = sampleCpu(process.pid);
      const main = threadCpuMs();
      const t = performance.now();
      await what();
      const seconds = (performance.now() - t) / 1000;
      const cpu = cpuBetween(before, sampleCpu(process.pid));
      const row = {
        callsPerSecond: Math.round(CALLS / seconds),
        cpuMsPer1kCalls: {
          node: round((cpu.selfMs ?? 0) / (CALLS / 1000)),
          mainThread: round((threadCpuMs() - main) / (CALLS / 1000)),
          upstream: round(cpu.childrenMs / (CALLS / 1000)),
        },
      };
      if (best === undefined || row.callsPerSecond > best.callsPerSecond) best = row;
    }
    return best;
  };
  const script = async (code: string) => {
    const outcome = await run('run_script', { code });
    const result = outcome.kind === 'result' ? outcome.result : undefined;
    if (result === undefined || result['isError'] === true)
      throw new Error(`script failed: ${JSON.stringify(outcome)}`);
    const text = (result['content'] as Array<{ text: string }>)[0]!.text;
    if (text !== '"x"') throw new Error(`script answered ${text}, not "x"`);
  };
  const loop = (calls: number) =>
    `let last; for (let i = 0; i < ${calls}; i++) last = await tools.ev.echo({ message: "x" }); return last.slice(-1);`;
  const allAtOnce = (calls: number) =>
    `const all = await Promise.all(Array.from({ length: ${calls} }, () => tools.ev.echo({ message: "x" })));` +
    ' return all[all.length - 1].slice(-1);';
  const rounds =
    `let last; for (let r = 0; r < ${ROUNDS}; r++) { const got = await Promise.all(Array.from({ length: ${FAN_OUT} },` +
    ' (_, i) => tools.ev.echo({ message: "x" }))); last = got[got.length - 1]; } return last.slice(-1);';
  const shortScripts = CALLS / (FAN_OUT * ROUNDS);
  const load = loadavg().map((l) => round(l));
  const rows = {
    directSequential: await measure('directSequential', async () => {
      for (let i = 0; i < CALLS; i++) await run('ev__echo', { message: 'x' });
    }),
    directConcurrent: await measure('directConcurrent', () =>
      Promise.all(Array.from({ length: CALLS }, () => run('ev__echo', { message: 'x' }))),
    ),
    scriptSequential: await measure('scriptSequential', () => script(loop(CALLS))),
    scriptConcurrent: await measure('scriptConcurrent', () => script(allAtOnce(CALLS))),
    twoScriptsSequential: await measure('twoScriptsSequential', () =>
      Promise.all([script(loop(CALLS / 2)), script(loop(CALLS / 2))]),
    ),
    twoScriptsConcurrent: await measure('twoScriptsConcurrent', () =>
      Promise.all([script(allAtOnce(CALLS / 2)), script(allAtOnce(CALLS / 2))]),
    ),
    // Eight agents, each sending its next script when the last one answered.
    [`shortScripts${FAN_OUT}x${ROUNDS}`]: await measure(`shortScripts${FAN_OUT}x${ROUNDS}`, () => {
      let sent = 0;
      return Promise.all(
        Array.from({ length: AGENTS }, async () => {
          while (sent++ < shortScripts) await script(rounds);
        }),
      );
    }),
  };
  process.stdout.write(
    `${JSON.stringify(
      {
        sandboxStartMs:
          starts.length === 0 ? undefined : { p50: quantile(starts, 0.5), p90: quantile(starts, 0.9), n: STARTS },
        sandboxStartBackToBackMs:
          backToBack.length === 0
            ? undefined
            : {
                p50: quantile(backToBack, 0.5),
                p90: quantile(backToBack, 0.9),
                n: STARTS,
                coldStarts: coldBackToBack,
              },
        upstreamAlone: ceiling,
        nestedCallsPerSecond: rows,
        calls: CALLS,
        loadAverage: { atStart: load, atEnd: loadavg().map((l) => round(l)) },
      },
      null,
      2,
    )}\n`,
  );
  await server.close();
  await Promise.all([pool.close(), sandbox.close()]);
  await spool.close();
  await rm(spoolDir, { recursive: true, force: true });
}

await main();
