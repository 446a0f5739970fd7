import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LoadJob } from '../../bench/src/load/protocol.ts';
import type { Measurement } from '../../bench/src/load/run-load.ts';
import { parseOptions } from '../../bench/src/options.ts';
import type { ManagedProcess } from '../../bench/src/processes.ts';
import { measureInTurns, type MeasureTarget } from '../../bench/src/scenarios/measure.ts';
import { stdioTurns } from '../../bench/src/scenarios/stdio-turns.ts';
import { mcpProxy, supergateway } from '../../bench/src/targets/peers.ts';
import { summarize } from '../../bench/src/stats.ts';

/** A peer as `startPeers` hands it over; only its URL and pid are read. */
function running(peer: typeof mcpProxy, port: number) {
  return { peer, server: { url: `http://127.0.0.1:${port}/mcp`, proc: { pid: port } as unknown as ManagedProcess } };
}

const gateway: MeasureTarget[] = (['stdio', 'http'] as const).map((upstream) => ({
  upstream, path: 'portcullis', load: { transport: 'http', url: `http://127.0.0.1:9/${upstream}`, headers: {} }, operation: { method: 'tools/call', tool: `${upstream}__echo` }, pid: 9,
}));

test('bench: the stdio rows take turns (direct, mcp-proxy, supergateway, portcullis) for each client, concurrency and pass', async () => {
  const targets = stdioTurns([running(mcpProxy, 1), running(supergateway, 2)], gateway);
  assert.deepEqual(targets.map((t) => [t.upstream, t.path, t.pid]), [['stdio', 'direct', undefined], ['stdio', 'mcp-proxy', 1], ['stdio', 'supergateway', 2], ['stdio', 'portcullis', 9]]);

  const order: string[] = [];
  const load = {
    async run(job: LoadJob): Promise<Measurement> {
      order.push(`${job.driver} c=${job.concurrency} ${job.target.transport === 'stdio' ? 'direct' : job.target.url}`);
      const latenciesMs = Float64Array.from({ length: job.calls }, () => 1);
      return { job, latency: summarize(latenciesMs), latenciesMs, calls: job.calls, truncated: false, errors: 0, wallMs: job.calls, callsPerSec: 1000, clientCpuPerCallMs: 0, probes: {} };
    },
  };
  const options = parseOptions(['--quick']);
  if (options === 'help') return assert.fail('--quick parsed as help');
  const profile = { ...options.profile, passes: 2 };
  const rows = await measureInTurns(load, targets, profile, () => {}, { concurrencies: [1] });
  const turn = ['direct', 'http://127.0.0.1:1/mcp', 'http://127.0.0.1:2/mcp', 'http://127.0.0.1:9/stdio'];
  assert.deepEqual(order, ['sdk', 'lean'].flatMap((driver) => [...turn, ...turn].map((target) => `${driver} c=1 ${target}`)), 'every pass visits each target in turn');
  assert.deepEqual(rows.map((row) => `${row.path} ${row.driver}`), ['direct sdk', 'direct lean', 'mcp-proxy sdk', 'mcp-proxy lean', 'supergateway sdk', 'supergateway lean', 'portcullis sdk', 'portcullis lean']);
  assert.ok(rows.every((row) => row.upstream === 'stdio' && row.failed === undefined));
});
