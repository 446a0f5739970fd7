import http from 'node:http';
import { CLI_MAIN, graphql, type GatewayUnderTest } from '../targets/portcullis.ts';
import { ManagedProcess, freePort } from '../processes.ts';
import { percentile } from '../stats.ts';

/**
 * Config propagation: the time from sending a GraphQL mutation that revokes a key to the moment every
 * one of N data-plane nodes refuses that key, with whatever keys the gateway holds. Each node is its
 * own `portcullis data-plane` process; the bench polls every node about every millisecond over
 * keep-alive connections. The figure includes the mutation's own processing and the polling interval,
 * so it is an upper bound of the stream's latency.
 */

export interface PropagationRow {
  nodes: number;
  rounds: number;
  keysConfigured: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** How long the revoke mutation itself took to answer (p50): the control plane's share. */
  mutationP50Ms: number;
}

const INITIALIZE = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** The HTTP status a node answers an initialize with this key (200 accepted, 401 refused). */
function probe(port: number, secret: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { agent, host: '127.0.0.1', port, path: '/mcp', method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${secret}` } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(INITIALIZE);
  });
}

/** Resolves with the time (ms since `since`) at which every node answered `status`. */
async function allAnswer(ports: readonly number[], secret: string, status: number, since: number, timeoutMs: number): Promise<number> {
  const times = await Promise.all(
    ports.map(async (port) => {
      for (;;) {
        if ((await probe(port, secret)) === status) return performance.now() - since;
        if (performance.now() - since > timeoutMs) throw new Error(`node on port ${port} did not answer ${status} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 1));
      }
    }),
  );
  return Math.max(...times);
}

async function startNodes(gateway: GatewayUnderTest, count: number): Promise<{ ports: number[]; stop: () => Promise<void> }> {
  const nodes: ManagedProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop(3_000)));
  };
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      ports.push(port);
      nodes.push(
        new ManagedProcess(`propagation node ${i}`, process.execPath, [
          '--import', 'tsx', CLI_MAIN, 'data-plane',
          '--control-plane', gateway.grpcAddress,
          '--node-token', gateway.nodeToken,
          '--node-id', `bench-propagation-${i}`,
          '--port', String(port),
          '--log-level', 'warn',
        ], { keepStdout: true }),
      );
    }
    for (const node of nodes) await node.waitForOutput(/MCP endpoint:/, 60_000);
    return { ports, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Measures revocation reaching N nodes, `rounds` times for each N. A node count that cannot be measured
 * (a node does not start) is reported through `skipped` and the other counts still are.
 */
export async function measurePropagation(
  gateway: GatewayUnderTest,
  nodeCounts: readonly number[],
  rounds: number,
  keysConfigured: number,
  progress: (line: string) => void,
  skipped: (reason: string) => void,
): Promise<PropagationRow[]> {
  const rows: PropagationRow[] = [];
  for (const count of nodeCounts) {
    progress(`config propagation: starting ${count} data-plane node(s)…`);
    let fleet: Awaited<ReturnType<typeof startNodes>>;
    try {
      fleet = await startNodes(gateway, count);
    } catch (error) {
      skipped(`config propagation to ${count} nodes not measured: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
      continue;
    }
    try {
      const samples: number[] = [];
      const mutations: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const created = await graphql<{ createVirtualKey: { secret: string; key: { id: string } } }>(gateway.graphqlUrl, gateway.adminToken, `mutation { createVirtualKey(input: {name: "propagation-${count}-${round}"}) { secret key { id } } }`);
        const { secret, key } = created.createVirtualKey;
        await allAnswer(fleet.ports, secret, 200, performance.now(), 30_000);
        const sent = performance.now();
        await graphql(gateway.graphqlUrl, gateway.adminToken, `mutation { revokeVirtualKey(id: "${key.id}") { id } }`);
        mutations.push(performance.now() - sent);
        samples.push(await allAnswer(fleet.ports, secret, 401, sent, 10_000));
      }
      samples.sort((a, b) => a - b);
      mutations.sort((a, b) => a - b);
      const row: PropagationRow = { nodes: count, rounds, keysConfigured, p50Ms: percentile(samples, 50), p99Ms: percentile(samples, 99), maxMs: samples[samples.length - 1]!, mutationP50Ms: percentile(mutations, 50) };
      rows.push(row);
      progress(`config propagation to ${count} node(s): p50 ${row.p50Ms.toFixed(1)} ms, p99 ${row.p99Ms.toFixed(1)} ms (the mutation itself: p50 ${row.mutationP50Ms.toFixed(1)} ms)`);
    } finally {
      await fleet.stop();
    }
  }
  agent.destroy();
  return rows;
}
