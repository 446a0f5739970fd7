/**
 * An A/B of two data-plane nodes started differently (each with its own control plane, same upstream), in
 * many short alternating passes (bench/src/node-ab.ts), for a difference in node CPU per call too small for
 * `npm run bench`'s two passes on a noisy machine. A development tool; the published figures come from `npm
 * run bench` (its audit-cost section runs the same A/B for recording on vs off).
 *
 * npx tsx bench/scripts/node-ab.ts [--passes 12] [--calls 6000] [--concurrency 32] [--driver lean|sdk] [--rate N]
 *   [--a "ARGS"] [--b "--audit off"]     (node arguments of each side, space-separated)
 *   [--a-flags "FLAGS"] [--b-flags "FLAGS"] (Node runtime flags of each side's node: "--max-semi-space-size=32")
 *   [--postgres URL]                      (each side's control plane on a fresh schema there, not embedded)
 *   [--a-ref REF] [--b-ref REF]           (that side runs another commit, in a temporary worktree)
 *   [--perf]                              (syscalls, context switches and page faults per call, from `perf stat`)
 *   [--threads]                           (µs per call on the node's main thread and on its other threads: GC, pool)
 *   [--together]                          (both sides' passes at once, each with its own load generator)
 *   [--upstream stdio|http]               (server-everything over stdio, or one over Streamable HTTP for both)
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
import type { Measurement, Probe } from '../src/load/run-load.ts';
import type { DriverKind } from '../src/load/protocol.ts';
import { perCallUs, runNodeAb, threadsProbe, type NodeAbPair } from '../src/node-ab.ts';
import { installCleanupHooks } from '../src/processes.ts';
import { loadAverageLine } from '../src/targets/probe-jobs.ts';

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
    together: { type: 'boolean', default: false },
    upstream: { type: 'string', default: 'stdio' },
    'a-ref': { type: 'string' },
    'b-ref': { type: 'string' },
    a: { type: 'string', default: '' },
    'a-flags': { type: 'string', default: '' },
    'b-flags': { type: 'string', default: '' },
    b: { type: 'string', default: '--audit off' },
  },
});
const driver: DriverKind = values.driver === 'sdk' ? 'sdk' : 'lean';
const words = (text: string) => text.split(' ').filter((word) => word !== '');

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

const perfLine = (m: Measurement) =>
  values.perf ? `  ${PERF_EVENTS.map((event) => Number(m.probes[event]).toFixed(2)).join(' / ')}` : '';
const threadsLine = (m: Measurement) =>
  values.threads
    ? `  main ${Number(m.probes['mainUs']).toFixed(1)} other ${Number(m.probes['otherUs']).toFixed(1)}`
    : '';

function printPair({ pair, a, b, differenceUs }: NodeAbPair): void {
  const cells = [perCallUs(a), perCallUs(b)].map((us) => us.toFixed(1).padStart(9));
  const rates = [a, b].map((m) => m.callsPerSec.toFixed(0).padStart(9));
  const probes = `${perfLine(a)}${perfLine(b)}${threadsLine(a)}${threadsLine(b)}`;
  console.log(
    `${String(pair).padStart(4)}  ${cells.join('  ')}  ${differenceUs.toFixed(1).padStart(6)}  ${rates.join('  ')}` +
      probes,
  );
}

async function main(): Promise<void> {
  installCleanupHooks();
  console.log(loadAverageLine());
  const pace = values.rate === undefined ? 'as fast as answered' : `${values.rate} calls/s`;
  const side = (args: string, flags: string, ref: string | undefined) =>
    `${ref ?? 'this tree'}${flags === '' ? '' : ` node ${flags}`} [${args}]`;
  const sidesLine =
    `A: ${side(values.a, values['a-flags'], values['a-ref'])}  ` +
    `B: ${side(values.b, values['b-flags'], values['b-ref'])}`;
  console.log(`${sidesLine}  ${driver} c=${values.concurrency}, ${values.calls} calls a pass, ${pace}`);
  console.log('pair  A µs/call  B µs/call  B−A µs  A calls/s  B calls/s');
  const sideOf = (args: string, flags: string, ref: string | undefined) => ({
    nodeArgs: words(args),
    runtimeFlags: words(flags),
    ...(ref === undefined ? {} : { ref }),
  });
  const result = await runNodeAb(
    {
      a: sideOf(values.a, values['a-flags'], values['a-ref']),
      b: sideOf(values.b, values['b-flags'], values['b-ref']),
      passes: Number(values.passes),
      calls: Number(values.calls),
      concurrency: Number(values.concurrency),
      driver,
      ...(values.rate === undefined ? {} : { ratePerSec: Number(values.rate) }),
      ...(values.postgres === undefined ? {} : { postgresUrl: values.postgres }),
      pin: values.pin,
      together: values.together,
      upstream: values.upstream === 'http' ? 'http' : 'stdio',
      probes: (pid) => [...(values.perf ? [perfProbe(pid)] : []), ...(values.threads ? [threadsProbe(pid)] : [])],
    },
    printPair,
  );
  const [q1, median, q3] = [result.q1Us, result.medianUs, result.q3Us].map((us) => us.toFixed(1));
  console.log(`B − A µs per call: median ${median}, quartiles ${q1} to ${q3}; ${loadAverageLine()}`);
  const { a, b } = result.wholeRunUs;
  console.log(
    `over the whole run (gaps included): A ${a.toFixed(1)}, B ${b.toFixed(1)} µs per call, B − A ${(b - a).toFixed(1)}`,
  );
}

await main();
