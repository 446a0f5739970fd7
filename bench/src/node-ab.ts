/**
 * An A/B of two data-plane nodes started differently (each with its own control plane, same upstream), in many
 * short passes, one side after the other (alternating which goes first) or both at the same time (`together`): the
 * machine's drift over minutes is shared by neighbouring passes, so the median of the pass-by-pass differences is
 * steadier than the difference of two rows, and side by side the two share even the moment. Used by `npm run
 * bench` (the audit-cost section: recording on vs off, together) and by `bench/scripts/node-ab.ts` (any two nodes,
 * for development).
 *
 * Pinned (Linux, `taskset`), the two nodes share CPU 0 and everything else the run started, with the PostgreSQL
 * backends serving it, runs on the other CPUs: a node's CPU per call is then its own, not inflated by a control
 * plane and PostgreSQL storing its audit records on its core. Paced (`ratePerSec`), both sides serve one throughput
 * (a node's CPU per call at c=32 falls as more calls share each turn of its event loop).
 */
import { execFileSync } from 'node:child_process';
import { cpus as cpuList } from 'node:os';
import pg from 'pg';
import { descendants, msBetween, type ProcessCpu, readProcessCpu } from './cpu.ts';
import { LoadGenerator, type Measurement, type Probe } from './load/run-load.ts';
import type { DriverKind } from './load/protocol.ts';
import { postgresBackendsOf } from './postgres-backends.ts';
import { adminQuery, freshSchemaName } from './scenarios/databases.ts';
import { percentile } from './stats.ts';
import { prepareBaseline, type BaselineTree } from './targets/baseline.ts';
import { startPortcullis, type RunningGateway } from './targets/portcullis.ts';
import { startEverythingHttp, type HttpServer } from './targets/upstream.ts';
import { toolCallJob } from './targets/probe-jobs.ts';

/** How one side's node is started. */
export interface NodeAbSide {
  /** Extra `portcullis data-plane` flags (`--audit off`). */
  readonly nodeArgs: readonly string[];
  /** Node runtime flags of its process (`--max-semi-space-size=32`). */
  readonly runtimeFlags?: readonly string[];
  /** Another commit, run from a temporary worktree; default this tree. */
  readonly ref?: string;
}

export interface NodeAbOptions {
  readonly a: NodeAbSide;
  readonly b: NodeAbSide;
  readonly passes: number;
  readonly calls: number;
  readonly concurrency: number;
  readonly driver: DriverKind;
  /** Calls a second on both sides; undefined: as fast as answered. */
  readonly ratePerSec?: number;
  /** Each side's control plane on a fresh schema there (dropped at the end); undefined: the embedded database. */
  readonly postgresUrl?: string;
  readonly pin: boolean;
  /**
   * Both sides' passes at the same time (each with its own load generator) rather than one after the other: the
   * two nodes then share the machine's state of that moment (another tenant's burst, the CPU's clock), which
   * sequential passes seconds apart do not.
   */
  readonly together?: boolean;
  /** The upstream the calls go to: server-everything over stdio (default), or over Streamable HTTP (one for both). */
  readonly upstream?: 'stdio' | 'http';
  /** Probes run on each pass, given the node's pid. */
  readonly probes?: (pid: number) => Probe[];
}

export interface NodeAbPair {
  readonly pair: number;
  readonly a: Measurement;
  readonly b: Measurement;
  /** B − A, node CPU µs per call. */
  readonly differenceUs: number;
}

export interface NodeAbResult {
  readonly pairs: readonly NodeAbPair[];
  /** Median and quartiles of B − A over the pairs, µs per call. */
  readonly medianUs: number;
  readonly q1Us: number;
  readonly q3Us: number;
  /** Each node's CPU per call over all the passes, gaps included (what a node does after its pass counts too). */
  readonly wholeRunUs: { readonly a: number; readonly b: number };
}

/** Node CPU per call of a pass, µs. */
export const perCallUs = (m: Measurement): number => (m.cpuPerCallMs ?? Number.NaN) * 1000;

/** Whether this machine can pin: Linux with `taskset` and two CPUs or more. */
export function canPin(): boolean {
  if (process.platform !== 'linux' || cpuList().length < 2) return false;
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * The node's CPU over a pass by thread, µs per call: `mainUs` its main thread (the event loop), `otherUs` the rest
 * (V8's GC helpers, libuv's pool). The main thread's figure varies far less from pass to pass than the others'.
 */
export function threadsProbe(pid: number): Probe {
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

/** Runs the A/B; `onPair` sees each pair as it is measured. */
export async function runNodeAb(
  options: NodeAbOptions,
  onPair: (pair: NodeAbPair) => void = () => {},
): Promise<NodeAbResult> {
  const schemas: string[] = [];
  const trees: BaselineTree[] = [];
  const sides: RunningGateway[] = [];
  const loads = [new LoadGenerator(), new LoadGenerator()] as const;
  let http: HttpServer | undefined;
  try {
    if (options.upstream === 'http') http = await startEverythingHttp();
    for (const side of [options.a, options.b])
      sides.push(await startSide(side, options.postgresUrl, schemas, trees, http?.url));
    const nodes = sides.map((side) => side.gateway.pid);
    const repin = async () => {
      if (options.pin) await pin(nodes, options.postgresUrl);
    };
    await repin();
    const both = async (first: number): Promise<Measurement[]> => {
      const measured: Measurement[] = [];
      if (options.together) {
        await repin();
        await Promise.all(
          [0, 1].map(async (index) => (measured[index] = await pass(loads[index]!, sides[index]!, options))),
        );
        return measured;
      }
      // Alternate which side goes first, so a drift within a pair does not favour one side.
      for (const index of [first, 1 - first]) {
        await repin();
        measured[index] = await pass(loads[index]!, sides[index]!, options);
      }
      return measured;
    };
    // Warm both up (JIT, heap sizing) before any pass counts.
    await both(0);
    // Each node's CPU over all the passes, gaps included: what a node does after a pass (ship its last records)
    // falls in the other side's pass, outside both pass readings.
    const startCpu = nodes.map((pid) => readProcessCpu(pid));
    const totalCalls = [0, 0];
    const pairs: NodeAbPair[] = [];
    for (let pair = 1; pair <= options.passes; pair++) {
      const [a, b] = (await both(pair % 2 === 1 ? 0 : 1)) as [Measurement, Measurement];
      totalCalls[0]! += a.calls;
      totalCalls[1]! += b.calls;
      const measuredPair = { pair, a, b, differenceUs: perCallUs(b) - perCallUs(a) };
      pairs.push(measuredPair);
      onPair(measuredPair);
    }
    const sorted = Float64Array.from(pairs.map((p) => p.differenceUs)).sort();
    const [q1Us, medianUs, q3Us] = [25, 50, 75].map((p) => percentile(sorted, p)) as [number, number, number];
    const [wholeA, wholeB] = nodes.map((pid, index) => {
      const [before, after] = [startCpu[index], readProcessCpu(pid)];
      return before === undefined || after === undefined
        ? Number.NaN
        : (msBetween(before, after) * 1000) / totalCalls[index]!;
    }) as [number, number];
    return { pairs, medianUs, q1Us, q3Us, wholeRunUs: { a: wholeA, b: wholeB } };
  } finally {
    for (const load of loads) await load.stop();
    for (const side of sides) await side.stop();
    await http?.proc.stop().catch(() => {});
    // This process was pinned with the rest: what it starts after the A/B must have every CPU again.
    if (options.pin) setAffinity(`0-${cpuList().length - 1}`, process.pid);
    for (const tree of trees) tree.remove();
    for (const schema of schemas) await adminQuery(options.postgresUrl!, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
}

async function startSide(
  side: NodeAbSide,
  postgresUrl: string | undefined,
  schemas: string[],
  trees: BaselineTree[],
  httpUpstreamUrl: string | undefined,
): Promise<RunningGateway> {
  const tree = side.ref === undefined ? undefined : prepareBaseline(side.ref);
  if (tree !== undefined) trees.push(tree);
  const setup = {
    nodeArgs: side.nodeArgs,
    nodeRuntimeFlags: side.runtimeFlags ?? [],
    ...(tree === undefined ? {} : { root: tree.root }),
  };
  if (postgresUrl === undefined) return startPortcullis(httpUpstreamUrl, setup);
  const schema = freshSchemaName('bench_ab');
  await adminQuery(postgresUrl, `CREATE SCHEMA "${schema}"`);
  schemas.push(schema);
  return startPortcullis(httpUpstreamUrl, {
    ...setup,
    controlPlaneArgs: ['--database-url', postgresUrl, '--database-schema', schema],
  });
}

async function pass(load: LoadGenerator, running: RunningGateway, options: NodeAbOptions): Promise<Measurement> {
  const { gateway } = running;
  const target = {
    transport: 'http' as const,
    url: gateway.mcpUrl,
    headers: { authorization: `Bearer ${gateway.secret}` },
  };
  const tool = options.upstream === 'http' ? gateway.tools.http : gateway.tools.stdio;
  const job = toolCallJob(options.driver, target, tool ?? '', options.concurrency, options.calls);
  if (options.ratePerSec !== undefined) job.ratePerSec = options.ratePerSec;
  return load.run(job, { pid: gateway.pid, timeoutMs: 120_000, probes: options.probes?.(gateway.pid) ?? [] });
}

/**
 * Puts the nodes on CPU 0 and the rest on the other CPUs: this process's other descendants (control planes,
 * upstreams, the load generator, itself) and the PostgreSQL backends serving them (which end with their
 * connections, so nothing outlives the run pinned). Done again before each pass, since backends and upstream
 * processes may have started since.
 */
async function pin(nodes: readonly number[], postgresUrl: string | undefined): Promise<void> {
  const cpus = cpuList().length;
  if (cpus < 2) throw new Error('pinning needs two CPUs or more');
  const others = descendants(process.pid).filter((pid) => !nodes.includes(pid));
  others.push(process.pid);
  if (postgresUrl !== undefined) {
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    try {
      for (const pid of [...others]) others.push(...(await postgresBackendsOf(client, pid)));
    } finally {
      await client.end();
    }
  }
  for (const pid of nodes) setAffinity('0', pid);
  for (const pid of others) setAffinity(`1-${cpus - 1}`, pid);
}

/** Puts every thread of `pid` on `cpuSet` (a process gone meanwhile is left alone). */
function setAffinity(cpuSet: string, pid: number): void {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpuSet, String(pid)], { stdio: 'ignore' });
  } catch {
    // Gone meanwhile.
  }
}
