import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CLI_MAIN, controlPlaneArgs } from '../targets/portcullis.ts';
import { BENCH_SRC, ManagedProcess, freePort } from '../processes.ts';
import { percentile } from '../stats.ts';
import { adminQuery, freshSchemaName, measurableDatabases, type DatabaseKind } from './databases.ts';

/**
 * Config propagation: the time from sending the GraphQL mutation that revokes a key to the moment
 * every one of N data-plane nodes refuses that key, with many keys configured. A control plane of
 * its own (on the embedded database, or on a fresh schema of the real PostgreSQL) and N
 * `portcullis data-plane` processes, no upstreams. No polling: before each revocation the bench
 * holds one 2025-era notification stream per node open with the key (GET /mcp), and a node closes
 * it in the same turn as it swaps in the configuration without the key; the figure is the last
 * close. Afterwards every node is asked once more and must answer 401.
 */

export type { DatabaseKind } from './databases.ts';

export interface PropagationRow {
  database: DatabaseKind;
  nodes: number;
  /** Node processes: each node its own, or several nodes to a process (node-group.ts). */
  processes: number;
  /** Keys configured besides the round's own (seeded through GraphQL; always there). */
  keysConfigured: number;
  rounds: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** How long the revoke mutation itself took to answer (p50): the control plane's share. */
  mutationP50Ms: number;
  /** When the first node refused the key (p50): the rest of p50Ms is the fan-out to the others. */
  firstNodeP50Ms: number;
  /** Every round's figure, ascending (in latest.json, not in the table). */
  samplesMs: number[];
}

/** N nodes, run in `processes` processes (equal: each node its own `portcullis data-plane`). */
export interface PropagationFleet {
  nodes: number;
  processes: number;
}

export interface PropagationOptions {
  databases: readonly DatabaseKind[];
  /** `postgres://…` of the real server (a schema is created for the run and dropped after). */
  postgresUrl: string;
  fleets: readonly PropagationFleet[];
  rounds: number;
  /** Virtual keys configured (created through GraphQL) before measuring. */
  keys: number;
}

const WARMUP_ROUNDS = 2;
const NODE_START_WAVE = 4;
const PROTOCOL = '2025-11-25';
const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'bench', version: '1' } },
});
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export interface ControlPlaneUnderTest {
  graphqlUrl: string;
  /** The schema on the real PostgreSQL (dropped at stop); undefined on the embedded database. */
  schema: string | undefined;
  /** The control plane's process, for its CPU. */
  pid: number;
  grpcAddress: string;
  adminToken: string;
  nodeToken: string;
  stop(): Promise<void>;
}

async function gql<T>(
  plane: ControlPlaneUnderTest,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  const response = await fetch(plane.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${plane.adminToken}` },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(60_000),
  });
  const body = (await response.json().catch(() => ({}))) as { data?: T; errors?: Array<{ message: string }> };
  if (!response.ok || body.errors?.length || !body.data)
    throw new Error(`GraphQL ${response.status}: ${body.errors?.map((e) => e.message).join('; ') ?? 'no data'}`);
  return body.data;
}

export async function startControlPlane(database: DatabaseKind, postgresUrl: string): Promise<ControlPlaneUnderTest> {
  const [graphqlPort, grpcPort] = [await freePort(), await freePort()];
  const adminToken = `bench-admin-${randomBytes(16).toString('hex')}`;
  const nodeToken = `bench-node-${randomBytes(16).toString('hex')}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-propagation-'));
  const schema = freshSchemaName('bench_propagation');
  const databaseArgs = database === 'postgres' ? ['--database-url', postgresUrl, '--database-schema', schema] : [];
  if (database === 'postgres') await adminQuery(postgresUrl, `CREATE SCHEMA "${schema}"`);
  const process_ = new ManagedProcess(
    `portcullis control-plane (${database})`,
    process.execPath,
    [
      ...flagsFrom('PORTCULLIS_BENCH_CONTROL_PLANE_FLAGS'),
      ...controlPlaneArgs(CLI_MAIN, { dataDir, graphqlPort, grpcPort, adminToken }),
      ...databaseArgs,
    ],
    // The embedded rows must not pick up a DATABASE_URL from the environment.
    { keepStdout: true, env: { DATABASE_URL: undefined, PORTCULLIS_NODE_TOKEN: nodeToken } },
  );
  const stop = async () => {
    await process_.stop(5_000);
    rmSync(dataDir, { recursive: true, force: true });
    if (database === 'postgres')
      await adminQuery(postgresUrl, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
  };
  try {
    await process_.waitForOutput(/GraphQL:/, 60_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    graphqlUrl: `http://127.0.0.1:${graphqlPort}/graphql`,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    schema: database === 'postgres' ? schema : undefined,
    pid: process_.pid,
    adminToken,
    nodeToken,
    stop,
  };
}

/** Creates `count` keys through GraphQL (1,000 a request); returns their ids and secrets. */
async function createKeys(
  plane: ControlPlaneUnderTest,
  count: number,
  prefix: string,
): Promise<Array<{ id: string; secret: string }>> {
  const created: Array<{ id: string; secret: string }> = [];
  while (created.length < count) {
    const batch = Math.min(1000, count - created.length);
    const inputs = Array.from({ length: batch }, (_, i) => ({
      name: `${prefix}-${created.length + i}`,
      allowedTools: ['ev__echo'],
    }));
    const data = await gql<{ createVirtualKeys: Array<{ secret: string; key: { id: string } }> }>(
      plane,
      `mutation ($inputs: [CreateVirtualKeyInput!]!) { createVirtualKeys(inputs: $inputs) { secret key { id } } }`,
      { inputs },
    );
    for (const entry of data.createVirtualKeys) created.push({ id: entry.key.id, secret: entry.secret });
  }
  return created;
}

const NODE_GROUP = resolve(BENCH_SRC, 'scenarios/node-group.ts');

/**
 * Starts `count` nodes in `processes` processes: each node its own `portcullis data-plane` process
 * when they are equal, else `count / processes` nodes to a process (node-group.ts).
 */
async function startNodes(
  plane: ControlPlaneUnderTest,
  count: number,
  processes: number,
): Promise<{ ports: number[]; stop: () => Promise<void> }> {
  const procs: ManagedProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(procs.map((n) => n.stop(3_000)));
  };
  const shared = ['--control-plane', plane.grpcAddress, '--log-level', 'warn'];
  const perProcess = Math.ceil(count / processes);
  try {
    // In waves: sixteen Node processes compiling TypeScript at once on two cores time each other out.
    for (let first = 0; first < processes; first += NODE_START_WAVE) {
      const wave: Array<{ proc: ManagedProcess; lastId: string }> = [];
      for (let p = first; p < Math.min(processes, first + NODE_START_WAVE); p++) {
        const nodes: Array<{ id: string; port: number }> = [];
        for (let i = p * perProcess; i < Math.min(count, (p + 1) * perProcess); i++)
          nodes.push({ id: `bench-propagation-${i}`, port: await freePort() });
        ports.push(...nodes.map((n) => n.port));
        const args =
          processes === count
            ? [
                '--import',
                'tsx',
                CLI_MAIN,
                'data-plane',
                ...shared,
                '--node-id',
                nodes[0]!.id,
                '--port',
                String(nodes[0]!.port),
              ]
            : ['--import', 'tsx', NODE_GROUP, ...shared, ...nodes.flatMap((n) => ['--node', `${n.id}:${n.port}`])];
        const proc = new ManagedProcess(
          `propagation node process ${p}`,
          process.execPath,
          [...flagsFrom('PORTCULLIS_BENCH_NODE_FLAGS'), ...args],
          { keepStdout: true, env: { PORTCULLIS_NODE_TOKEN: plane.nodeToken } },
        );
        procs.push(proc);
        wave.push({ proc, lastId: nodes.at(-1)!.id });
      }
      for (const { proc, lastId } of wave)
        await proc.waitForOutput(new RegExp(`${lastId}\\n\\s+MCP endpoint:`), 90_000);
    }
    return { ports, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

function request(
  port: number,
  method: 'POST' | 'GET',
  headers: Record<string, string>,
  body?: string,
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { agent: method === 'POST' ? agent : false, host: '127.0.0.1', port, path: '/mcp', method, headers },
      resolve,
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Initializes a 2025-era session with this key: the HTTP status, and the session id when accepted. */
async function initialize(port: number, secret: string): Promise<{ status: number; sessionId: string | undefined }> {
  const res = await request(
    port,
    'POST',
    {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${secret}`,
    },
    INITIALIZE,
  );
  res.resume();
  await new Promise((resolve) => res.on('end', resolve));
  const sessionId = res.headers['mcp-session-id'];
  return { status: res.statusCode ?? 0, sessionId: typeof sessionId === 'string' ? sessionId : undefined };
}

/**
 * Opens a notification stream on one node with this key, once the node accepts the key (polled
 * every 5 ms: not measured). Resolves with a promise of the time at which the node closes it
 * (wrapped: an async function returning a bare promise would wait for it).
 */
async function openStream(port: number, secret: string, timeoutMs: number): Promise<{ closed: Promise<number> }> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const { status, sessionId } = await initialize(port, secret);
    if (status === 200 && sessionId) {
      const res = await request(port, 'GET', {
        accept: 'text/event-stream',
        authorization: `Bearer ${secret}`,
        'mcp-session-id': sessionId,
        'mcp-protocol-version': PROTOCOL,
      });
      if (res.statusCode !== 200)
        throw new Error(`node on port ${port} answered the notification stream with ${res.statusCode}`);
      res.resume();
      return { closed: new Promise((resolve) => res.once('close', () => resolve(performance.now()))) };
    }
    if (performance.now() > deadline)
      throw new Error(`node on port ${port} did not accept a new key within ${timeoutMs} ms (last status ${status})`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Revokes the key and resolves with ms until every node closed its stream, until the first did, and the mutation's ms.
 */
async function revokeRound(
  plane: ControlPlaneUnderTest,
  ports: readonly number[],
  key: { id: string; secret: string },
): Promise<[number, number, number]> {
  const streams = await Promise.all(ports.map((port) => openStream(port, key.secret, 30_000)));
  const sent = performance.now();
  const mutation = gql(plane, `mutation ($id: ID!) { revokeVirtualKey(id: $id) { id } }`, { id: key.id }).then(
    () => performance.now() - sent,
  );
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error('a node kept serving a revoked key for 10 s')), 10_000).unref(),
  );
  const closed = await Promise.race([Promise.all(streams.map((stream) => stream.closed)), timeout]);
  const mutationMs = await mutation;
  for (const port of ports) {
    const { status } = await initialize(port, key.secret);
    if (status !== 401)
      throw new Error(`node on port ${port} closed the stream but still answers ${status} for the revoked key`);
  }
  return [Math.max(...closed) - sent, Math.min(...closed) - sent, mutationMs];
}

/**
 * Measures revocation reaching N nodes, `rounds` times for each N, for each database. A database or
 * node count that cannot be measured is reported through `note` and the others still are.
 */
export async function measurePropagation(
  options: PropagationOptions,
  progress: (line: string) => void,
  note: (line: string) => void,
): Promise<PropagationRow[]> {
  const rows: PropagationRow[] = [];
  for (const database of await measurableDatabases(
    options.databases,
    options.postgresUrl,
    'config propagation',
    note,
  )) {
    let plane: ControlPlaneUnderTest;
    try {
      plane = await startControlPlane(database, options.postgresUrl);
    } catch (error) {
      note(`config propagation (${database}) not measured: the control plane did not start: ${firstLine(error)}`);
      continue;
    }
    try {
      const seeded = performance.now();
      await createKeys(plane, options.keys, 'seed');
      progress(
        `config propagation (${database}): ${options.keys} keys created through GraphQL in ` +
          `${((performance.now() - seeded) / 1000).toFixed(1)} s`,
      );
      for (const { nodes: count, processes } of options.fleets) {
        progress(`config propagation (${database}): starting ${count} data-plane node(s) in ${processes} process(es)…`);
        let fleet: Awaited<ReturnType<typeof startNodes>>;
        try {
          fleet = await startNodes(plane, count, processes);
        } catch (error) {
          note(
            `config propagation (${database}) to ${count} nodes in ${processes} process(es) not measured: ` +
              `${firstLine(error)}`,
          );
          continue;
        }
        try {
          const keys = await createKeys(plane, WARMUP_ROUNDS + options.rounds, `revoke-${count}-${processes}`);
          const samples: number[] = [];
          const mutations: number[] = [];
          const firsts: number[] = [];
          for (const [round, key] of keys.entries()) {
            const [ms, firstMs, mutationMs] = await revokeRound(plane, fleet.ports, key);
            if (round < WARMUP_ROUNDS) continue;
            samples.push(ms);
            firsts.push(firstMs);
            mutations.push(mutationMs);
          }
          for (const list of [samples, mutations, firsts]) list.sort((a, b) => a - b);
          const row: PropagationRow = {
            database,
            nodes: count,
            processes,
            keysConfigured: options.keys,
            rounds: options.rounds,
            p50Ms: percentile(samples, 50),
            p99Ms: percentile(samples, 99),
            maxMs: samples[samples.length - 1]!,
            mutationP50Ms: percentile(mutations, 50),
            firstNodeP50Ms: percentile(firsts, 50),
            samplesMs: samples.map((ms) => Math.round(ms * 10) / 10),
          };
          rows.push(row);
          progress(
            `config propagation (${database}) to ${count} node(s) in ${processes} process(es): p50 ` +
              `${row.p50Ms.toFixed(1)} ms, p99 ${row.p99Ms.toFixed(1)} ms (first node p50 ` +
              `${row.firstNodeP50Ms.toFixed(1)} ms; the mutation itself: p50 ${row.mutationP50Ms.toFixed(1)} ms)`,
          );
        } catch (error) {
          note(
            `config propagation (${database}) to ${count} nodes in ${processes} process(es) failed: ` +
              `${firstLine(error)}`,
          );
        } finally {
          await fleet.stop();
        }
      }
    } catch (error) {
      note(`config propagation (${database}) not measured: ${firstLine(error)}`);
    } finally {
      await plane.stop();
    }
  }
  agent.destroy();
  return rows;
}

/**
 * Extra Node flags from an environment variable (space-separated), e.g.
 * PORTCULLIS_BENCH_CONTROL_PLANE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the control
 * plane; PORTCULLIS_BENCH_NODE_FLAGS does the same for every node.
 */
function flagsFrom(variable: string): string[] {
  return (process.env[variable] ?? '').split(' ').filter((flag) => flag !== '');
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}
