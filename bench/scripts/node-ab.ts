/**
 * An A/B of two data-plane nodes started differently (each with its own control plane, same upstream), in
 * many short alternating passes, for a difference in node CPU per call too small for `npm run bench`'s two
 * passes on a noisy machine: the machine's drift over minutes is shared by neighbouring passes, so the
 * median of the pass-by-pass differences is steadier than the difference of two rows. A development tool;
 * the published figures come from `npm run bench`.
 *
 * npx tsx bench/scripts/node-ab.ts [--passes 12] [--calls 6000] [--concurrency 32] [--driver lean|sdk] [--rate N]
 *   [--a "ARGS"] [--b "--audit off"]     (node arguments of each side, space-separated)
 *   [--a-flags "FLAGS"] [--b-flags "FLAGS"] (Node runtime flags of each side's node: "--max-semi-space-size=32")
 *   [--postgres URL]                      (each side's control plane on a fresh schema there, not embedded)
 *   [--a-ref REF] [--b-ref REF]           (that side runs another commit, in a temporary worktree)
 *   [--perf]                              (syscalls, context switches and page faults per call, from `perf stat`)
 *   [--threads]                           (µs per call on the node's main thread and on its other threads: GC, pool)
 *   [--pin]                               (the two nodes on CPU 0, everything else this run started, and the
 *                                          PostgreSQL backends serving it, on the other CPUs; Linux, `taskset`)
 *
 * With --pin, a node's CPU per call is its own: a control plane and PostgreSQL storing audit records no longer
 * preempt it on its core. Pace both sides with --rate below what the pinned machine serves, so both run at one
 * throughput (a node's CPU per call at c=32 falls as more calls share each turn of its event loop).
 *
 * Prints each pair of passes and, at the end, the median and quartiles of B − A in µs per call.
 */
import { parseArgs } from 'node:util';
import { type ChildProcess, spawn } from 'node:child_process';
import { LoadGenerator, type Measurement, type Probe } from '../src/load/run-load.ts';
import type { DriverKind } from '../src/load/protocol.ts';
import { execFileSync } from 'node:child_process';
import { cpus as cpuList } from 'node:os';
import pg from 'pg';
import { descendants, msBetween, type ProcessCpu, readProcessCpu } from '../src/cpu.ts';
import { postgresBackendsOf } from '../src/postgres-backends.ts';
import { installCleanupHooks } from '../src/processes.ts';
import { adminQuery, freshSchemaName } from '../src/scenarios/databases.ts';
import { percentile } from '../src/stats.ts';
import { prepareBaseline, type BaselineTree } from '../src/targets/baseline.ts';
import { startPortcullis, type GatewaySetup, type RunningGateway } from '../src/targets/portcullis.ts';
import { loadAverageLine, toolCallJob } from '../src/targets/probe-jobs.ts';

const { values } = parseArgs({
  options: {
    passes: { type: 'string', default: '12' },
    calls: { type: 'string', default: '6000' },
    concurrency: { type: 'string', default: '32' },
    driver: { type: 'string', default: 'lean' },
    rate: { type: 'string' },
    postgres: { type: 'string' },
    perf: { type: 'boolean', default: false },
    threads: { type: 'boolean', default: false },
    pin: { type: 'boolean', default: false },
    'a-ref': { type: 'string' },
    'b-ref': { type: 'string' },
    a: { type: 'string', default: '' },
    'a-flags': { type: 'string', default: '' },
    'b-flags': { type: 'string', default: '' },
    b: { type: 'string', default: '--audit off' },
  },
});
const driver: DriverKind = values.driver === 'sdk' ? 'sdk' : 'lean';
const [passes, calls, concurrency] = [Number(values.passes), Number(values.calls), Number(values.concurrency)];
const words = (text: string) => text.split(' ').filter((word) => word !== '');

async function pass(load: LoadGenerator, running: RunningGateway): Promise<Measurement> {
  const { gateway } = running;
  const target = {
    transport: 'http' as const,
    url: gateway.mcpUrl,
    headers: { authorization: `Bearer ${gateway.secret}` },
  };
  const tool = gateway.tools.stdio ?? '';
  const job = toolCallJob(driver, target, tool, concurrency, calls);
  if (values.rate !== undefined) job.ratePerSec = Number(values.rate);
  const probes = [
    ...(values.perf ? [perfProbe(gateway.pid)] : []),
    ...(values.threads ? [threadsProbe(gateway.pid)] : []),
  ];
  return load.run(job, { pid: gateway.pid, timeoutMs: 120_000, probes });
}

const PERF_EVENTS = ['raw_syscalls:sys_enter', 'context-switches', 'page-faults'];

/** `perf stat` on the node over a pass: each event's count per call. */
function perfProbe(pid: number): Probe {
  let perf: ChildProcess | undefined;
  let output = '';
  return {
    name: 'perf',
    async before() {
      perf = spawn('perf', ['stat', '-x', ',', '-e', PERF_EVENTS.join(','), '-p', String(pid)], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      output = '';
      perf.stderr?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
    },
    async after(calls) {
      const exited = new Promise((resolve) => perf?.once('exit', resolve));
      perf?.kill('SIGINT');
      await exited;
      const figures: Record<string, number> = {};
      for (const line of output.split('\n')) {
        const [count, , event] = line.split(',');
        if (event !== undefined && PERF_EVENTS.includes(event)) figures[event] = Number(count) / calls;
      }
      return figures;
    },
  };
}

/** The node's CPU over a pass by thread: its main thread (the event loop), the rest (V8's GC helpers, libuv's pool). */
function threadsProbe(pid: number): Probe {
  let before: ProcessCpu | undefined;
  return {
    name: 'threads',
    async before() {
      before = readProcessCpu(pid);
    },
    async after(calls): Promise<Record<string, number>> {
      const [was, is] = [before?.threadsNs, readProcessCpu(pid)?.threadsNs];
      if (was === undefined || is === undefined) return {};
      let [main, other] = [0, 0];
      for (const [tid, ns] of is) {
        const spent = ns - (was.get(tid) ?? 0);
        if (tid === pid) main += spent;
        else other += spent;
      }
      return { mainUs: main / 1000 / calls, otherUs: other / 1000 / calls };
    },
  };
}

const perfLine = (m: Measurement) =>
  values.perf ? `  ${PERF_EVENTS.map((event) => Number(m.probes[event]).toFixed(2)).join(' / ')}` : '';
const threadsLine = (m: Measurement) =>
  values.threads
    ? `  main ${Number(m.probes['mainUs']).toFixed(1)} other ${Number(m.probes['otherUs']).toFixed(1)}`
    : '';

const perCallUs = (m: Measurement) => (m.cpuPerCallMs ?? Number.NaN) * 1000;

/**
 * Puts the nodes on CPU 0 and the rest on the other CPUs: this process's other descendants (control planes,
 * upstreams, the load generator, itself) and the PostgreSQL backends serving them (which end with their
 * connections, so nothing outlives the run pinned). Done again before each pass, since backends and upstream
 * processes may have started since.
 */
async function pin(nodes: readonly number[]): Promise<void> {
  const cpus = cpuList().length;
  if (cpus < 2) throw new Error('--pin needs two CPUs or more');
  const others = descendants(process.pid).filter((pid) => !nodes.includes(pid));
  others.push(process.pid);
  if (values.postgres !== undefined) {
    const client = new pg.Client({ connectionString: values.postgres });
    await client.connect();
    try {
      for (const pid of [...others]) others.push(...(await postgresBackendsOf(client, pid)));
    } finally {
      await client.end();
    }
  }
  const set = (cpuSet: string, pid: number) => {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', cpuSet, String(pid)], { stdio: 'ignore' });
    } catch {
      // Gone meanwhile.
    }
  };
  for (const pid of nodes) set('0', pid);
  for (const pid of others) set(`1-${cpus - 1}`, pid);
}

async function main(): Promise<void> {
  installCleanupHooks();
  const schemas: string[] = [];
  const trees: BaselineTree[] = [];
  const start = async (nodeArgs: string, flags: string, ref: string | undefined) => {
    const tree = ref === undefined ? undefined : prepareBaseline(ref);
    if (tree !== undefined) trees.push(tree);
    const setup: GatewaySetup = {
      nodeArgs: words(nodeArgs),
      nodeRuntimeFlags: words(flags),
      ...(tree === undefined ? {} : { root: tree.root }),
    };
    if (values.postgres === undefined) return startPortcullis(undefined, setup);
    const schema = freshSchemaName('bench_ab');
    await adminQuery(values.postgres, `CREATE SCHEMA "${schema}"`);
    schemas.push(schema);
    return startPortcullis(undefined, {
      ...setup,
      controlPlaneArgs: ['--database-url', values.postgres, '--database-schema', schema],
    });
  };
  const sides = [await start(values.a, values['a-flags'], values['a-ref'])];
  sides.push(await start(values.b, values['b-flags'], values['b-ref']));
  const load = new LoadGenerator();
  const differences: number[] = [];
  try {
    console.log(loadAverageLine());
    const pace = values.rate === undefined ? 'as fast as answered' : `${values.rate} calls/s`;
    const side = (args: string, flags: string, ref: string | undefined) =>
      `${ref ?? 'this tree'}${flags === '' ? '' : ` node ${flags}`} [${args}]`;
    const sidesLine =
      `A: ${side(values.a, values['a-flags'], values['a-ref'])}  ` +
      `B: ${side(values.b, values['b-flags'], values['b-ref'])}`;
    console.log(`${sidesLine}  ${driver} c=${concurrency}, ${calls} calls a pass, ${pace}`);
    console.log('pair  A µs/call  B µs/call  B−A µs  A calls/s  B calls/s');
    const nodes = sides.map((side) => side.gateway.pid);
    if (values.pin) await pin(nodes);
    // Warm both up (JIT, heap sizing) before any pass counts.
    for (const side of sides) await pass(load, side);
    // Each node's CPU over all the passes, gaps included: what a node does after a pass (ship its last records)
    // falls in the other side's pass, outside both pass readings.
    const startCpu = nodes.map((pid) => readProcessCpu(pid));
    const totalCalls = [0, 0];
    for (let pair = 1; pair <= passes; pair++) {
      // Alternate which side goes first, so a drift within a pair does not favour one side.
      const order = pair % 2 === 1 ? [0, 1] : [1, 0];
      const measured: Measurement[] = [];
      for (const index of order) {
        if (values.pin) await pin(nodes);
        measured[index] = await pass(load, sides[index]!);
        totalCalls[index]! += measured[index]!.calls;
      }
      const [a, b] = [measured[0]!, measured[1]!];
      differences.push(perCallUs(b) - perCallUs(a));
      const cells = [perCallUs(a), perCallUs(b)].map((us) => us.toFixed(1).padStart(9));
      const rates = [a, b].map((m) => m.callsPerSec.toFixed(0).padStart(9));
      const added = (perCallUs(b) - perCallUs(a)).toFixed(1).padStart(6);
      const probes = `${perfLine(a)}${perfLine(b)}${threadsLine(a)}${threadsLine(b)}`;
      console.log(`${String(pair).padStart(4)}  ${cells.join('  ')}  ${added}  ${rates.join('  ')}${probes}`);
    }
    const sorted = Float64Array.from(differences).sort();
    const [q1, median, q3] = [25, 50, 75].map((p) => percentile(sorted, p).toFixed(1));
    console.log(`B − A µs per call: median ${median}, quartiles ${q1} to ${q3}; ${loadAverageLine()}`);
    const whole = nodes.map((pid, index) => {
      const [before, after] = [startCpu[index], readProcessCpu(pid)];
      return before === undefined || after === undefined
        ? Number.NaN
        : (msBetween(before, after) * 1000) / totalCalls[index]!;
    });
    console.log(
      `over the whole run (gaps included): A ${whole[0]!.toFixed(1)}, B ${whole[1]!.toFixed(1)} µs per call, ` +
        `B − A ${(whole[1]! - whole[0]!).toFixed(1)}`,
    );
  } finally {
    await load.stop();
    for (const side of sides) await side.stop();
    for (const tree of trees) tree.remove();
    for (const schema of schemas) await adminQuery(values.postgres!, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
}

await main();
