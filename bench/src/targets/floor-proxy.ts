/**
 * The floor for any Node proxy in front of a Streamable HTTP upstream, measured beside the direct
 * path and Portcullis: a byte-forwarding proxy (`node:http` server, undici client, nothing parsed,
 * checked or recorded) between the same client and server-everything. What it adds over the direct
 * path is what a second HTTP hop costs on this machine before a gateway does anything; a latency
 * target below it cannot be met by a proxy written in Node. A development tool, like hot-path.ts:
 * the published figures come from `npm run bench`.
 *
 *   tsx bench/src/targets/floor-proxy.ts [--rounds N] [--calls N]
 *   tsx bench/src/targets/floor-proxy.ts serve <upstream URL> <port>   (the proxy process itself)
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { Pool } from 'undici';
import { LoadGenerator } from '../load/run-load.ts';
import type { DriverKind, LoadTarget } from '../load/protocol.ts';
import { LOOPBACK_PRELOAD, ManagedProcess, freePort, installCleanupHooks, waitForPort } from '../processes.ts';
import { startPortcullis } from './portcullis.ts';
import { loadAverageLine, toolCallJob } from './probe-jobs.ts';
import { startEverythingHttp, type HttpServer } from './upstream.ts';

export const FLOOR_PROXY_NOTE =
  'floor-proxy: a byte-forwarding proxy in front of the Streamable HTTP upstream (node:http server, undici client; ' +
  'nothing parsed, checked or recorded), the floor for any Node proxy: what a second HTTP hop costs here before a ' +
  'gateway does anything';

/** Starts the floor proxy (its own process) in front of `upstreamUrl`; its URL has the upstream's path. */
export async function startFloorProxy(upstreamUrl: string): Promise<HttpServer> {
  const port = await freePort();
  const proc = new ManagedProcess('floor proxy', process.execPath, [
    '--import',
    LOOPBACK_PRELOAD,
    '--import',
    'tsx',
    import.meta.filename,
    'serve',
    upstreamUrl,
    String(port),
  ]);
  await waitForPort(port, proc);
  return { proc, url: `http://127.0.0.1:${port}${new URL(upstreamUrl).pathname}` };
}

/** Hop-by-hop headers a proxy does not forward. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'content-length']);

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers))
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

/** The proxy: each request forwarded as it came, its answer streamed back chunk by chunk. */
function serve(upstream: URL, port: number): void {
  const pool = new Pool(upstream.origin, { pipelining: 1, bodyTimeout: 0, headersTimeout: 0 });
  createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = chunks.length === 0 ? null : Buffer.concat(chunks);
      pool.dispatch(
        {
          origin: upstream.origin,
          path: req.url ?? '/',
          method: req.method ?? 'GET',
          headers: forwardable(req.headers),
          body,
        },
        {
          onRequestStart: () => undefined,
          onResponseStart: (_c, status, headers) => res.writeHead(status, forwardable(headers as IncomingHttpHeaders)),
          onResponseData: (_c, chunk) => void res.write(chunk),
          onResponseEnd: () => res.end(),
          onResponseError: () => res.destroy(),
        },
      );
    });
  }).listen(port, '127.0.0.1');
}

async function measure(args: { rounds: number; calls: number }): Promise<void> {
  installCleanupHooks();
  const http = await startEverythingHttp();
  const floor = await startFloorProxy(http.url);
  const running = await startPortcullis(http.url);
  const load = new LoadGenerator();
  const targets: { name: string; target: LoadTarget; pid: number }[] = [
    { name: 'direct', target: { transport: 'http', url: http.url, headers: {} }, pid: http.proc.pid },
    { name: 'floor proxy', target: { transport: 'http', url: floor.url, headers: {} }, pid: floor.proc.pid },
    {
      name: 'portcullis',
      target: {
        transport: 'http',
        url: running.gateway.mcpUrl,
        headers: { authorization: `Bearer ${running.gateway.secret}` },
      },
      pid: running.gateway.pid,
    },
  ];
  try {
    console.log(loadAverageLine());
    console.log('round driver  c  path          calls  p50 ms  p99 ms  calls/s  cpu/call ms  p50/direct');
    for (let round = 1; round <= args.rounds; round++) {
      for (const driver of ['sdk', 'lean'] as DriverKind[]) {
        for (const concurrency of [1, 32]) {
          let directP50 = NaN;
          for (const { name, target, pid } of targets) {
            const calls = concurrency === 1 ? Math.ceil(args.calls / 4) : args.calls;
            const tool = name === 'portcullis' ? running.gateway.tools.http! : 'echo';
            const m = await load.run(toolCallJob(driver, target, tool, concurrency, calls), {
              pid,
              probes: [],
              timeoutMs: 120_000,
            });
            if (name === 'direct') directP50 = m.latency.p50Ms;
            console.log(
              [
                String(round).padStart(5),
                driver.padEnd(6),
                String(concurrency).padStart(2),
                name.padEnd(12),
                String(m.calls).padStart(6),
                m.latency.p50Ms.toFixed(3).padStart(7),
                m.latency.p99Ms.toFixed(3).padStart(7),
                m.callsPerSec.toFixed(0).padStart(8),
                (m.cpuPerCallMs ?? NaN).toFixed(3).padStart(12),
                (m.latency.p50Ms / directP50).toFixed(2).padStart(11),
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
    await floor.proc.stop();
    await http.proc.stop();
  }
}

/** Run as a script (the dev tool, or the proxy process itself); imported by the bench, it only exports. */
async function main(argv: readonly string[]): Promise<void> {
  if (argv[0] === 'serve') return serve(new URL(argv[1]!), Number(argv[2]));
  const args = { rounds: 1, calls: 6_000 };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--rounds') args.rounds = Number(argv[i + 1]);
    else if (argv[i] === '--calls') args.calls = Number(argv[i + 1]);
    else throw new Error(`unknown option ${argv[i]}`);
  }
  await measure(args);
}

if (process.argv[1] === import.meta.filename) await main(process.argv.slice(2));
