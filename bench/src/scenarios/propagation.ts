import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CLI_MAIN, controlPlaneArgs, controlPlaneFlags, nodeFlags } from '../targets/portcullis.ts';
import { BENCH_SRC, ManagedProcess, freePort } from '../processes.ts';
import { percentile } from '../stats.ts';
import { startEverythingHttp, type HttpServer } from '../targets/upstream.ts';
import { adminQuery, freshSchemaName, measurableDatabases, type DatabaseKind } from './databases.ts';

/**
 * Config propagation: the time from sending the GraphQL mutation that revokes a key (or rotates its
 * secret with no grace period) to the moment every one of N data-plane nodes refuses that key (that
 * secret), with many keys configured. A control plane of
 * its own (on the embedded database, or on a fresh schema of the real PostgreSQL) and N
 * `portcullis data-plane` processes, no upstreams. No polling: before each revocation the bench
 * holds one 2025-era notification stream per node open with the key (GET /mcp), and a node closes
 * it in the same turn as it swaps in the configuration without the key; the figure is the last
 * close. Afterwards every node is asked once more and must answer 401.
 */

export type { DatabaseKind } from './databases.ts';

/**
 * `revocation`: revokeVirtualKey → every node refuses the key. `rotation`: rotateVirtualKey with
 * gracePeriodSeconds 0 → every node refuses the old secret (and accepts the new one). `budget-exhaustion`:
 * one node spends the whole budget not leased to the others → every other node refuses the key as spent.
 */
export type PropagationKind = 'revocation' | 'rotation' | 'budget-exhaustion';

export interface PropagationRow {
  kind: PropagationKind;
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
  /**
   * How long the mutation itself took to answer (p50): the control plane's share. Budget exhaustion:
   * how long the spending node took to spend the budget, from the setBudget mutation on.
   */
  mutationP50Ms: number;
  /** When the first node refused the key (p50): the rest of p50Ms is the fan-out to the others. */
  firstNodeP50Ms: number;
  /**
   * Budget exhaustion only: calls the other nodes still admitted (p50 over rounds) after the spending
   * node was told the budget is spent: what their leases held, never more than the budget.
   */
  admittedAfterP50?: number;
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
      ...controlPlaneFlags(),
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
        const proc = new ManagedProcess(`propagation node process ${p}`, process.execPath, [...nodeFlags(), ...args], {
          keepStdout: true,
          env: { PORTCULLIS_NODE_TOKEN: plane.nodeToken },
        });
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
 * Opens a stream per node with `secret`, sends the mutation, and resolves with when each stream closed (ms after
 * sending), the mutation's data and its own ms. A node still holding its stream after 10 s fails the round.
 */
async function mutateAndWatch<T>(
  plane: ControlPlaneUnderTest,
  ports: readonly number[],
  secret: string,
  mutation: { query: string; variables: Record<string, unknown>; stale: string },
): Promise<{ closed: number[]; data: T; ms: number }> {
  const streams = await Promise.all(ports.map((port) => openStream(port, secret, 30_000)));
  const sent = performance.now();
  const answered = gql<T>(plane, mutation.query, mutation.variables).then((data) => ({
    data,
    ms: performance.now() - sent,
  }));
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`a node kept serving ${mutation.stale} for 10 s`)), 10_000).unref(),
  );
  const closed = await Promise.race([Promise.all(streams.map((stream) => stream.closed)), timeout]);
  const { data, ms } = await answered;
  return { closed: closed.map((at) => at - sent), data, ms };
}

/**
 * Revokes the key and resolves with ms until every node closed its stream, until the first did, and the mutation's ms.
 */
async function revokeRound(
  plane: ControlPlaneUnderTest,
  ports: readonly number[],
  key: { id: string; secret: string },
): Promise<[number, number, number]> {
  const { closed, ms } = await mutateAndWatch(plane, ports, key.secret, {
    query: `mutation ($id: ID!) { revokeVirtualKey(id: $id) { id } }`,
    variables: { id: key.id },
    stale: 'a revoked key',
  });
  for (const port of ports) {
    const { status } = await initialize(port, key.secret);
    if (status !== 401)
      throw new Error(`node on port ${port} closed the stream but still answers ${status} for the revoked key`);
  }
  return [Math.max(...closed), Math.min(...closed), ms];
}

/**
 * Rotates the key's secret with no grace period and resolves like revokeRound: every node must then
 * refuse the old secret and accept the new one.
 */
async function rotateRound(
  plane: ControlPlaneUnderTest,
  ports: readonly number[],
  key: { id: string; secret: string },
): Promise<[number, number, number]> {
  const { closed, data, ms } = await mutateAndWatch<{ rotateVirtualKey: { secret: string } }>(
    plane,
    ports,
    key.secret,
    {
      query: `mutation ($id: ID!) { rotateVirtualKey(id: $id, gracePeriodSeconds: 0) { secret } }`,
      variables: { id: key.id },
      stale: 'a rotated-out secret',
    },
  );
  for (const port of ports) {
    const old = await initialize(port, key.secret);
    if (old.status !== 401)
      throw new Error(`node on port ${port} closed the stream but still answers ${old.status} for the old secret`);
    const fresh = await initialize(port, data.rotateVirtualKey.secret);
    if (fresh.status !== 200)
      throw new Error(`node on port ${port} refuses the new secret after rotation (${fresh.status})`);
  }
  return [Math.max(...closed), Math.min(...closed), ms];
}

/** The price of one ev__echo call in the budget rounds, in micro-units. */
const ECHO_PRICE = 1_000;

type CallOutcome = 'ok' | 'top-up' | 'spent';

/** A 2025-era session of `secret` on one node, calling ev__echo: admitted, refused for a top-up, or spent. */
async function echoCaller(port: number, secret: string): Promise<() => Promise<CallOutcome>> {
  const { status, sessionId } = await initialize(port, secret);
  if (status !== 200 || sessionId === undefined)
    throw new Error(`node on port ${port} refused a session for the budget key (${status})`);
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${secret}`,
    'mcp-session-id': sessionId,
    'mcp-protocol-version': PROTOCOL,
  };
  await readBody(
    await request(port, 'POST', headers, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })),
  );
  let id = 10;
  return async () => {
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: id++,
      method: 'tools/call',
      params: { name: 'ev__echo', arguments: { message: 'budget' } },
    });
    const text = await readBody(await request(port, 'POST', headers, body));
    // A JSON body, or one SSE event carrying it.
    const json = text.trimStart().startsWith('{') ? text : (/^data: (.*)$/m.exec(text)?.[1] ?? '');
    const answer = JSON.parse(json) as { result?: unknown; error?: { code: number; data?: { exhausted?: boolean } } };
    if (answer.result !== undefined) return 'ok';
    if (answer.error?.code === -32050) return answer.error.data?.exhausted === true ? 'spent' : 'top-up';
    throw new Error(`node on port ${port} answered the budget key's call with ${text.slice(0, 300)}`);
  };
}

function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (text += chunk));
    res.on('end', () => resolve(text));
    res.on('error', reject);
  });
}

/** Calls until `outcome`, waiting 2 ms after each top-up refusal; counts the admitted calls. */
async function callUntil(call: () => Promise<CallOutcome>, what: string): Promise<{ at: number; admitted: number }> {
  const deadline = performance.now() + 10_000;
  let admitted = 0;
  let toppingUp = 0;
  for (;;) {
    const outcome = await call();
    if (outcome === 'spent') return { at: performance.now(), admitted };
    if (outcome === 'ok') admitted++;
    else {
      toppingUp++;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    if (performance.now() > deadline)
      throw new Error(
        `${what} was not told the budget is spent within 10 s (${admitted} calls admitted, ${toppingUp} refused ` +
          'while a top-up was awaited)',
      );
  }
}

/**
 * A key gets a budget of 4 n calls: each of the n nodes is leased one call's worth (a slice of the
 * budget is at least the dearest call), the rest stays with the control plane. The first node calls
 * until it is told the budget is spent (it draws the whole pool through top-ups); from that moment
 * the other nodes are called until each is told so too. Resolves with ms until the last and the
 * first of them refused, the spending node's ms, and the calls the others admitted meanwhile (their
 * leases: spending never exceeds the budget, however late a node hears of it).
 */
async function exhaustRound(
  plane: ControlPlaneUnderTest,
  ports: readonly number[],
  key: { id: string; secret: string },
): Promise<[number, number, number, number]> {
  const callers = await Promise.all(ports.map((port) => echoCaller(port, key.secret)));
  const set = performance.now();
  await gql(plane, `mutation ($input: SetBudgetInput!) { setBudget(input: $input) { id } }`, {
    input: { scope: 'KEY', ownerId: key.id, period: 'NONE', amountMicros: 4 * ports.length * ECHO_PRICE },
  });
  const spender = await callUntil(callers[0]!, `the spending node (port ${ports[0]})`);
  const others = await Promise.all(
    callers.slice(1).map((call, i) => callUntil(call, `the other node on port ${ports[i + 1]}`)),
  );
  const lags = others.map((other) => other.at - spender.at);
  const admitted = others.reduce((sum, other) => sum + other.admitted, 0);
  return [Math.max(...lags), Math.min(...lags), spender.at - set, admitted];
}

/** server-everything over Streamable HTTP as upstream `ev`, every call priced; undone by the returned function. */
async function priceyUpstream(plane: ControlPlaneUnderTest, server: HttpServer): Promise<() => Promise<void>> {
  const { createUpstream } = await gql<{ createUpstream: { id: string } }>(
    plane,
    `mutation ($input: CreateUpstreamInput!) { createUpstream(input: $input) { id } }`,
    { input: { name: 'ev', transport: 'STREAMABLE_HTTP', url: server.url } },
  );
  await gql(plane, `mutation ($input: SetToolPriceInput!) { setToolPrice(input: $input) { priceMicros } }`, {
    input: { upstreamId: createUpstream.id, priceMicros: ECHO_PRICE },
  });
  return async () => {
    await gql(plane, `mutation ($id: ID!) { deleteUpstream(id: $id) }`, { id: createUpstream.id });
  };
}

/** Waits (not measured) until every node serves ev__echo to `secret`. */
async function echoServed(ports: readonly number[], secret: string): Promise<void> {
  for (const port of ports) {
    const deadline = performance.now() + 30_000;
    const call = await echoCaller(port, secret);
    for (;;) {
      const served = await call().then(
        (outcome) => outcome === 'ok',
        () => false,
      );
      if (served) break;
      if (performance.now() > deadline) throw new Error(`node on port ${port} did not serve ev__echo within 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

interface RoundFigures {
  samples: number[];
  firsts: number[];
  mutations: number[];
  admitted: number[];
}

function propagationRow(
  kind: PropagationKind,
  database: DatabaseKind,
  fleet: PropagationFleet,
  options: PropagationOptions,
  figures: RoundFigures,
): PropagationRow {
  const { samples, firsts, mutations, admitted } = figures;
  for (const list of [samples, mutations, firsts, admitted]) list.sort((a, b) => a - b);
  return {
    kind,
    database,
    nodes: fleet.nodes,
    processes: fleet.processes,
    keysConfigured: options.keys,
    rounds: samples.length,
    p50Ms: percentile(samples, 50),
    p99Ms: percentile(samples, 99),
    maxMs: samples[samples.length - 1]!,
    mutationP50Ms: percentile(mutations, 50),
    firstNodeP50Ms: percentile(firsts, 50),
    ...(kind === 'budget-exhaustion' ? { admittedAfterP50: percentile(admitted, 50) } : {}),
    samplesMs: samples.map((ms) => Math.round(ms * 10) / 10),
  };
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
    let upstream: HttpServer | undefined;
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
          const fleetSpec = { nodes: count, processes };
          const kinds: PropagationKind[] = [
            'revocation',
            'rotation',
            ...(count > 1 ? ['budget-exhaustion' as const] : []),
          ];
          for (const kind of kinds) {
            let undo: (() => Promise<void>) | undefined;
            try {
              const keys = await createKeys(plane, WARMUP_ROUNDS + options.rounds, `${kind}-${count}-${processes}`);
              if (kind === 'budget-exhaustion') {
                upstream ??= await startEverythingHttp();
                undo = await priceyUpstream(plane, upstream);
                await echoServed(fleet.ports, keys[0]!.secret);
              }
              const figures: RoundFigures = { samples: [], firsts: [], mutations: [], admitted: [] };
              for (const [round, key] of keys.entries()) {
                const [ms, firstMs, mutationMs, admitted] =
                  kind === 'revocation'
                    ? [...(await revokeRound(plane, fleet.ports, key)), 0]
                    : kind === 'rotation'
                      ? [...(await rotateRound(plane, fleet.ports, key)), 0]
                      : await exhaustRound(plane, fleet.ports, key);
                if (round < WARMUP_ROUNDS) continue;
                figures.samples.push(ms);
                figures.firsts.push(firstMs);
                figures.mutations.push(mutationMs);
                figures.admitted.push(admitted);
              }
              const row = propagationRow(kind, database, fleetSpec, options, figures);
              rows.push(row);
              progress(
                `${kind} propagation (${database}) to ${count} node(s) in ${processes} process(es): p50 ` +
                  `${row.p50Ms.toFixed(1)} ms, p99 ${row.p99Ms.toFixed(1)} ms (first node p50 ` +
                  `${row.firstNodeP50Ms.toFixed(1)} ms; ` +
                  `${kind === 'budget-exhaustion' ? 'spending' : 'the mutation'} ` +
                  `itself: p50 ${row.mutationP50Ms.toFixed(1)} ms)`,
              );
            } catch (error) {
              note(
                `${kind} propagation (${database}) to ${count} nodes in ${processes} process(es) failed: ` +
                  `${firstLine(error)}`,
              );
            } finally {
              await undo?.().catch(() => undefined);
            }
          }
        } finally {
          await fleet.stop();
        }
      }
    } catch (error) {
      note(`config propagation (${database}) not measured: ${firstLine(error)}`);
    } finally {
      await upstream?.proc.stop();
      await plane.stop();
    }
  }
  agent.destroy();
  return rows;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}
