/**
 * A focused A/B of the data-plane node's per-call hot path: only the Portcullis `tools/call` rows
 * (stdio and Streamable HTTP upstream; lean and SDK drivers; c=1 and c=32), with more calls per
 * row than `npm run bench -- --quick` so two runs of the same tree agree closely, and nothing else
 * (no peers, no tools/list, no propagation). It is a development tool, not the published bench:
 * the figures that count come from `npm run bench`.
 *
 * tsx bench/src/targets/hot-path.ts [--rounds N] [--calls N] [--only stdio|http] [--driver lean|sdk] [--concurrency
 * 1|32] [--node-arg ARG]…   (e.g. `--node-arg --audit --node-arg off`: passed to `portcullis data-plane`)
 *
 * Set PORTCULLIS_BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the node.
 */
import { LoadGenerator } from '../load/run-load.ts';
import type { DriverKind } from '../load/protocol.ts';
import { installCleanupHooks } from '../processes.ts';
import { GATEWAY_OVERHEAD_HISTOGRAM, startPortcullis } from './portcullis.ts';
import { histogramProbe } from './histogram-probe.ts';
import { loadAverageLine, toolCallJob } from './probe-jobs.ts';
import { startEverythingHttp } from './upstream.ts';

interface Args {
  rounds: number;
  calls: number;
  only: 'stdio' | 'http' | undefined;
  driver: DriverKind | undefined;
  concurrency: number | undefined;
  nodeArgs: string[];
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    rounds: 2,
    calls: 8_000,
    only: undefined,
    driver: undefined,
    concurrency: undefined,
    nodeArgs: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--rounds') args.rounds = Number(value);
    else if (flag === '--calls') args.calls = Number(value);
    else if (flag === '--only' && (value === 'stdio' || value === 'http')) args.only = value;
    else if (flag === '--driver' && (value === 'lean' || value === 'sdk')) args.driver = value;
    else if (flag === '--concurrency' && (value === '1' || value === '32')) args.concurrency = Number(value);
    else if (flag === '--node-arg' && value !== undefined) args.nodeArgs.push(value);
    else throw new Error(`unknown option ${flag}`);
    i++;
  }
  return args;
}

async function main(): Promise<void> {
  installCleanupHooks();
  const args = parseArgs(process.argv.slice(2));
  const http = args.only === 'stdio' ? undefined : await startEverythingHttp();
  const running = await startPortcullis(http?.url, { nodeArgs: args.nodeArgs });
  const load = new LoadGenerator();
  const { gateway } = running;
  try {
    const upstreams = (['stdio', 'http'] as const).filter((u) => (args.only ? u === args.only : true));
    const drivers = (['lean', 'sdk'] as const).filter((d) => (args.driver ? d === args.driver : true));
    console.log(loadAverageLine());
    console.log('round upstream driver  c   calls  p50 ms  p99 ms  calls/s  node cpu/call ms  gateway added mean ms');
    for (let round = 1; round <= args.rounds; round++) {
      for (const upstream of upstreams) {
        const tool = gateway.tools[upstream];
        if (!tool) continue;
        for (const driver of drivers) {
          for (const concurrency of args.concurrency ? [args.concurrency] : [1, 32]) {
            const calls = driver === 'sdk' || concurrency === 1 ? Math.ceil(args.calls / 4) : args.calls;
            const target = {
              transport: 'http' as const,
              url: gateway.mcpUrl,
              headers: { authorization: `Bearer ${gateway.secret}` },
            };
            const m = await load.run(toolCallJob(driver, target, tool, concurrency, calls), {
              pid: gateway.pid,
              probes:
                gateway.metricsUrl === undefined
                  ? []
                  : [histogramProbe(gateway.metricsUrl, GATEWAY_OVERHEAD_HISTOGRAM, 'added')],
              timeoutMs: 120_000,
            });
            const added = m.probes['addedMeanMs'];
            console.log(
              [
                String(round).padStart(5),
                upstream.padEnd(8),
                driver.padEnd(6),
                String(concurrency).padStart(3),
                String(m.calls).padStart(7),
                m.latency.p50Ms.toFixed(3).padStart(7),
                m.latency.p99Ms.toFixed(3).padStart(7),
                m.callsPerSec.toFixed(0).padStart(8),
                (m.cpuPerCallMs ?? NaN).toFixed(4).padStart(17),
                (typeof added === 'number' ? added.toFixed(4) : String(added)).padStart(22),
                m.errors ? ` errors=${m.errors} ${m.firstError ?? ''}` : '',
              ].join(' '),
            );
          }
        }
      }
    }
  } finally {
    await load.stop();
    await running.stop();
    await http?.proc.stop();
  }
}

await main();
