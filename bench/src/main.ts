import { parseOptions, USAGE } from './options.ts';
import { installCleanupHooks, killAllSync } from './processes.ts';
import { renderReport } from './report/table.ts';
import { checkTargets } from './report/targets.ts';
import { DEFAULT_RESULTS_FILE, startContext, writeResults } from './report/json.ts';
import { addRatios, type RoundTripRow, type RunResults } from './results.ts';
import { LoadGenerator } from './load/run-load.ts';
import { measureRoundTrips, type RoundTripTarget } from './scenarios/round-trip.ts';
import { PEERS, PEERS_FRONTING_HTTP_NOTE } from './targets/peers.ts';
import { GatewayUnavailable, portcullisTargets, startPortcullis, type RunningGateway } from './targets/portcullis.ts';
import { EVERYTHING_TOOL, everythingStdioTarget, startEverythingHttp, type HttpServer } from './targets/upstream.ts';

/**
 * `npm run bench [-- --quick]`: tool-call round trips to server-everything directly, through the peer
 * proxies and through Portcullis, in one run on this machine; a table on stdout (progress on stderr)
 * and every figure in bench/results/latest.json. Every process it starts is stopped at the end.
 */

const PATH_ORDER = ['direct', 'portcullis', 'mcp-proxy', 'supergateway'];

function sortRows(rows: RoundTripRow[]): RoundTripRow[] {
  return [...rows].sort(
    (a, b) =>
      a.upstream.localeCompare(b.upstream) * -1 || // stdio first
      a.driver.localeCompare(b.driver) || // lean, then sdk
      a.concurrency - b.concurrency ||
      PATH_ORDER.indexOf(a.path) - PATH_ORDER.indexOf(b.path),
  );
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  installCleanupHooks();
  const context = startContext(options.profile.quick);
  const progress = (line: string) => process.stderr.write(line + '\n');
  const results: RunResults = { rows: [], sections: {}, notes: [], targets: [] };
  const { machine } = context;
  progress(`bench (${options.profile.quick ? 'quick' : 'full'}): ${machine.cpuModel}, ${machine.cores} cores, Node ${process.version}`);
  if (machine.loadAverage1m > machine.cores * 0.5) {
    results.notes.push(`the machine was busy when the run started (1-minute load average ${machine.loadAverage1m.toFixed(2)} on ${machine.cores} cores): figures are noisier and lower than on an idle machine`);
  }

  const load = new LoadGenerator();
  const measure = async (target: RoundTripTarget) => {
    progress(`${target.upstream} upstream via ${target.path}:`);
    results.rows.push(...(await measureRoundTrips(load, target, options.profile, progress)));
  };

  let httpServer: HttpServer | undefined;
  let gateway: RunningGateway | undefined;
  let gatewayMissing: string | undefined;
  try {
    // stdio upstream: the SDK client / lean driver spawn server-everything themselves.
    await measure({ upstream: 'stdio', path: 'direct', load: everythingStdioTarget(), tool: EVERYTHING_TOOL });
    for (const peer of PEERS) {
      let server: HttpServer | undefined;
      try {
        server = await peer.start();
        results.notes.push(`${peer.name}: ${peer.mode}`);
        await measure({
          upstream: 'stdio',
          path: peer.name as RoundTripTarget['path'],
          load: { transport: 'http', url: server.url, headers: {} },
          tool: EVERYTHING_TOOL,
          pid: server.proc.pid,
        });
      } catch (error) {
        results.notes.push(`${peer.name} not measured: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
      } finally {
        await server?.proc.stop();
      }
    }

    // Streamable HTTP upstream: server-everything stays up, since the gateway's HTTP rows call it too.
    httpServer = await startEverythingHttp();
    await measure({ upstream: 'http', path: 'direct', load: { transport: 'http', url: httpServer.url, headers: {} }, tool: EVERYTHING_TOOL, pid: httpServer.proc.pid });
    results.notes.push(PEERS_FRONTING_HTTP_NOTE);

    // Portcullis: the same drivers against one data-plane node with a key, allow-list, audit and metrics.
    if (options.skipGateway) {
      gatewayMissing = 'skipped (--no-gateway)';
    } else {
      try {
        progress('starting portcullis dev…');
        gateway = await startPortcullis(httpServer.url);
        results.notes.push('portcullis: `portcullis dev` (control plane, embedded Postgres and one data-plane node in one process, so its CPU per call includes audit ingestion)');
        for (const target of portcullisTargets(gateway.gateway)) await measure(target);
      } catch (error) {
        if (!(error instanceof GatewayUnavailable)) throw error;
        gatewayMissing = error.message;
        progress(`gateway not available: ${error.message}`);
      }
    }
    if (gatewayMissing) results.notes.push(`gateway not available: ${gatewayMissing} (no Portcullis rows)`);
    results.notes.push(
      'not measured yet: tools/list with 10/100/1,000 upstream tools and 10,000 keys; config propagation to 1/4/16 nodes; snapshot build and apply at 1k/10k/100k keys',
    );
  } finally {
    await load.stop();
    await gateway?.stop().catch(() => {});
    await httpServer?.proc.stop().catch(() => {});
  }

  results.rows = sortRows(results.rows);
  addRatios(results.rows);
  results.targets = checkTargets(results.rows, gatewayMissing);
  process.stdout.write(renderReport(results) + '\n');
  const file = options.outFile ?? DEFAULT_RESULTS_FILE;
  writeResults(file, context, results);
  process.stdout.write(`\nResults: ${file}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  killAllSync();
  process.exit(1);
});
