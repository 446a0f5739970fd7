import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import { openLeanHttp } from '../load/lean-http.ts';
import type { Operation } from '../load/protocol.ts';
import { ManagedProcess, REPO_ROOT, freePort } from '../processes.ts';
import type { MeasureTarget } from '../scenarios/measure.ts';
import type { PathKind } from '../results.ts';
import { histogramProbe } from './histogram-probe.ts';
import { EVERYTHING_TOOL, everythingStdio } from './upstream.ts';

/**
 * The Portcullis rows' plug-in point. `startPortcullis` runs the gateway as a user would in production
 * (`portcullis control-plane` on its embedded Postgres and one `portcullis data-plane` node, each its
 * own process; a key with an allow-list; metrics on) and configures it through GraphQL; `portcullisTargets` turns a
 * started gateway into round-trip targets measured by exactly the same drivers as the direct path and
 * the peers. When the gateway cannot be started, `GatewayUnavailable` says why and no figure is printed.
 */

export const CLI_MAIN = resolve(REPO_ROOT, 'cli/src/main.ts');

/** Upstream names registered in the gateway; agents see `<name>__echo`. */
export const STDIO_UPSTREAM = 'ev';
export const HTTP_UPSTREAM = 'evh';

/**
 * The data-plane histogram of the gateway's own time per proxied call (total minus the upstream's part).
 * Whoever lands the metrics: export it under this name, or change it here.
 */
export const GATEWAY_OVERHEAD_HISTOGRAM = 'portcullis_gateway_overhead_seconds';

export class GatewayUnavailable extends Error {}

/** The arguments of Node that start `portcullis control-plane` from `cliMain` (a quiet log: warnings and up). */
export function controlPlaneArgs(
  cliMain: string,
  plane: { dataDir: string; graphqlPort: number; grpcPort: number; adminToken: string },
): string[] {
  return [
    '--import',
    'tsx',
    cliMain,
    'control-plane',
    '--data-dir',
    plane.dataDir,
    '--graphql-port',
    String(plane.graphqlPort),
    '--grpc-port',
    String(plane.grpcPort),
    '--admin-token',
    plane.adminToken,
    '--log-level',
    'warn',
  ];
}

/** A started gateway, as the drivers need it. */
export interface GatewayUnderTest {
  /** The agents' MCP endpoint. */
  mcpUrl: string;
  /** A virtual key allowed to call the bench tools. */
  secret: string;
  /** The process whose CPU is "the gateway's". */
  pid: number;
  /** Prometheus endpoint of the data-plane node (unset for a tree whose node has no `--metrics-listen`). */
  metricsUrl: string | undefined;
  /** Tool names by upstream kind, as agents see them; a kind is absent when that upstream is not registered. */
  tools: Partial<Record<'stdio' | 'http', string>>;
  /** Control-plane access, for scenarios that configure more (tools/list upstreams, keys). */
  graphqlUrl: string;
  adminToken: string;
  /** Where more data-plane nodes connect (config propagation). */
  grpcAddress: string;
  nodeToken: string;
}

export interface RunningGateway {
  gateway: GatewayUnderTest;
  stop(): Promise<void>;
}

/**
 * How a gateway under test differs from the current tree's defaults: another tree (a baseline commit
 * in a worktree of its own), extra data-plane flags (`--audit off`), or limits on the bench's key.
 */
export interface GatewaySetup {
  /** The checkout whose `cli/src/main.ts` runs both planes; default this one. */
  root?: string;
  /** Extra `portcullis data-plane` flags. */
  nodeArgs?: readonly string[];
  /** Node runtime flags of the data-plane process (`--max-semi-space-size=32`), after `PORTCULLIS_BENCH_NODE_FLAGS`. */
  nodeRuntimeFlags?: readonly string[];
  /** Extra `portcullis control-plane` flags (`--database-url`, `--database-schema`: the real PostgreSQL). */
  controlPlaneArgs?: readonly string[];
  /** Give the key a rate limit and a budget, and the tools a price, none of which a bench run can reach. */
  limits?: boolean;
  /** How long each plane may take to start (default 60 s for the control plane, 30 s for the node). */
  startTimeoutMs?: number;
}

/**
 * Far above what a run can spend, so every call passes through the limit checks and none is refused:
 * 10^8 requests a minute (the most a limit may be) and 10^15 micro-units at a price of 1 a call.
 */
export const GENEROUS_LIMITS = { perMinute: 100_000_000, budgetMicros: 1e15, priceMicros: 1 } as const;

/** Round-trip targets for a started gateway: the same drivers, the same calls, the key on every request. */
export function portcullisTargets(gateway: GatewayUnderTest, path: PathKind = 'portcullis'): MeasureTarget[] {
  const targets: MeasureTarget[] = [];
  for (const upstream of ['stdio', 'http'] as const) {
    const tool = gateway.tools[upstream];
    if (!tool) continue;
    targets.push({
      upstream,
      path,
      load: { transport: 'http', url: gateway.mcpUrl, headers: { authorization: `Bearer ${gateway.secret}` } },
      operation: { method: 'tools/call', tool },
      pid: gateway.pid,
      probes:
        gateway.metricsUrl === undefined
          ? []
          : [histogramProbe(gateway.metricsUrl, GATEWAY_OVERHEAD_HISTOGRAM, 'gatewayAdded')],
    });
  }
  return targets;
}

export async function graphql<T>(
  url: string,
  adminToken: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = (await response.json().catch(() => ({}))) as { data?: T; errors?: Array<{ message: string }> };
  if (!response.ok || body.errors?.length || !body.data) {
    throw new GatewayUnavailable(
      `GraphQL ${response.status}: ${body.errors?.map((e) => e.message).join('; ') ?? 'no data'}`,
    );
  }
  return body.data;
}

/**
 * Starts the control plane and one data-plane node on free loopback ports in a fresh data dir, registers
 * server-everything over
 * stdio (`ev`) and, when given, over Streamable HTTP (`evh`), creates a key allowed to call both echo
 * tools, and waits until a call through the gateway succeeds.
 */
export async function startPortcullis(
  httpUpstreamUrl: string | undefined,
  setup: GatewaySetup = {},
): Promise<RunningGateway> {
  const cwd = setup.root ?? REPO_ROOT;
  const cliMain = resolve(cwd, 'cli/src/main.ts');
  if (!existsSync(cliMain)) throw new GatewayUnavailable(`${cliMain} does not exist`);
  // An older tree's node may predate `--metrics-listen`: it is then measured without the histogram probe.
  const withMetrics = setup.root === undefined || treeMentions(resolve(setup.root, 'cli/src'), "'metrics-listen'");
  // The node's audit spool goes with the data dir, removed at stop (by default it stays in the tmpdir after the run).
  const spoolInDataDir = setup.root === undefined || treeMentions(resolve(setup.root, 'cli/src'), "'audit-spool-dir'");
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  const [port, graphqlPort, grpcPort, metricsPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const adminToken = `bench-admin-${randomBytes(16).toString('hex')}`;
  const nodeToken = `bench-node-${randomBytes(16).toString('hex')}`;
  // The planes run as separate processes, as in production, so the node's CPU per call is its own
  // (with `dev` it would include the control plane and the embedded database).
  const controlPlane = new ManagedProcess(
    'portcullis control-plane',
    process.execPath,
    [...controlPlaneArgs(cliMain, { dataDir, graphqlPort, grpcPort, adminToken }), ...(setup.controlPlaneArgs ?? [])],
    // tsx reads the tsconfig.json of the working directory: a baseline tree compiles with its own.
    { keepStdout: true, env: { PORTCULLIS_NODE_TOKEN: nodeToken }, cwd },
  );
  let node: ManagedProcess | undefined;
  const stop = async () => {
    await node?.stop(5_000);
    await controlPlane.stop(5_000);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    let mcpUrl: string;
    try {
      await controlPlane.waitForOutput(/GraphQL:/, setup.startTimeoutMs ?? 60_000);
      node = new ManagedProcess(
        'portcullis data-plane',
        process.execPath,
        [
          ...nodeFlags(),
          ...(setup.nodeRuntimeFlags ?? []),
          '--import',
          'tsx',
          cliMain,
          'data-plane',
          '--control-plane',
          `127.0.0.1:${grpcPort}`,
          '--node-id',
          'bench',
          '--port',
          String(port),
          ...(withMetrics ? ['--metrics-listen', `127.0.0.1:${metricsPort}`] : []),
          ...(spoolInDataDir ? ['--audit-spool-dir', join(dataDir, 'audit-spool')] : []),
          '--log-level',
          'warn',
          ...(setup.nodeArgs ?? []),
        ],
        { keepStdout: true, env: { PORTCULLIS_NODE_TOKEN: nodeToken }, cwd },
      );
      mcpUrl = (await node.waitForOutput(/MCP endpoint:\s+(\S+)/, setup.startTimeoutMs ?? 30_000))[1]!;
    } catch (error) {
      throw new GatewayUnavailable(`the gateway did not start: ${firstLines(error)}`);
    }
    const graphqlUrl = `http://127.0.0.1:${graphqlPort}/graphql`;
    const stdio = everythingStdio();
    const upstreamIds: string[] = [];
    const upstream = await graphql<{ createUpstream: { id: string } }>(
      graphqlUrl,
      adminToken,
      `mutation { createUpstream(input: {name: ${JSON.stringify(STDIO_UPSTREAM)}, transport: STDIO, command: ` +
        `${JSON.stringify(stdio.command)}, args: ${JSON.stringify(stdio.args)}}) { id } }`,
    );
    upstreamIds.push(upstream.createUpstream.id);
    const tools: GatewayUnderTest['tools'] = { stdio: `${STDIO_UPSTREAM}__${EVERYTHING_TOOL}` };
    if (httpUpstreamUrl) {
      const http = await graphql<{ createUpstream: { id: string } }>(
        graphqlUrl,
        adminToken,
        `mutation { createUpstream(input: {name: ${JSON.stringify(HTTP_UPSTREAM)}, transport: STREAMABLE_HTTP, ` +
          `url: ${JSON.stringify(httpUpstreamUrl)}}) { id } }`,
      );
      upstreamIds.push(http.createUpstream.id);
      tools.http = `${HTTP_UPSTREAM}__${EVERYTHING_TOOL}`;
    }
    const rateLimits = setup.limits
      ? `, rateLimits: {requestsPerMinute: ${GENEROUS_LIMITS.perMinute}, ` +
        `toolCallsPerMinute: ${GENEROUS_LIMITS.perMinute}}`
      : '';
    const created = await graphql<{ createVirtualKey: { secret: string; key: { id: string } } }>(
      graphqlUrl,
      adminToken,
      `mutation { createVirtualKey(input: {name: "bench", allowedTools: ${JSON.stringify(Object.values(tools))}` +
        `${rateLimits}}) { secret key { id } } }`,
    );
    if (setup.limits) await setGenerousBudget(graphqlUrl, adminToken, created.createVirtualKey.key.id, upstreamIds);
    const gateway: GatewayUnderTest = {
      mcpUrl,
      secret: created.createVirtualKey.secret,
      pid: node.pid,
      metricsUrl: withMetrics ? `http://127.0.0.1:${metricsPort}/metrics` : undefined,
      tools,
      graphqlUrl,
      adminToken,
      grpcAddress: `127.0.0.1:${grpcPort}`,
      nodeToken,
    };
    for (const tool of Object.values(tools))
      await waitUntilServed(gateway, { method: 'tools/call', tool }, gateway.secret, setup.startTimeoutMs ?? 30_000);
    return { gateway, stop };
  } catch (error) {
    await stop();
    if (error instanceof GatewayUnavailable) throw error;
    throw new GatewayUnavailable(firstLines(error));
  }
}

/** A budget on the key and a price on each upstream's tools, so that every call is priced and paid for. */
async function setGenerousBudget(
  graphqlUrl: string,
  adminToken: string,
  keyId: string,
  upstreamIds: readonly string[],
): Promise<void> {
  for (const upstreamId of upstreamIds)
    await graphql(
      graphqlUrl,
      adminToken,
      `mutation { setToolPrice(input: {upstreamId: ${JSON.stringify(upstreamId)}, priceMicros: ` +
        `${GENEROUS_LIMITS.priceMicros}}) { priceMicros } }`,
    );
  await graphql(
    graphqlUrl,
    adminToken,
    `mutation { setBudget(input: {scope: KEY, ownerId: ${JSON.stringify(keyId)}, period: NONE, amountMicros: ` +
      `${GENEROUS_LIMITS.budgetMicros}}) { id } }`,
  );
}

/** Micro-units spent from every budget so far (the limits-on variant: evidence that its calls were charged). */
export async function budgetsSpent(gateway: GatewayUnderTest): Promise<number> {
  const data = await graphql<{ budgets: Array<{ spentMicros: number }> }>(
    gateway.graphqlUrl,
    gateway.adminToken,
    '{ budgets { spentMicros } }',
  );
  return data.budgets.reduce((sum, b) => sum + b.spentMicros, 0);
}

/** Whether any source file under `dir` contains `text` (what an older tree's CLI offers). */
function treeMentions(dir: string, text: string): boolean {
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    if (readFileSync(join(entry.parentPath, entry.name), 'utf8').includes(text)) return true;
  }
  return false;
}

/**
 * Polls one request (a fresh 2025-handshake session each time, from this process; not a measurement)
 * until it succeeds: the snapshot with the key and upstream has reached the node and the upstream is up.
 */
export async function waitUntilServed(
  gateway: GatewayUnderTest,
  operation: Operation,
  secret = gateway.secret,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const driver = await openLeanHttp(
        gateway.mcpUrl,
        { authorization: `Bearer ${secret}` },
        1,
        operation,
        LATEST_PROTOCOL_VERSION,
      );
      try {
        const outcome = await driver.call(0);
        if (outcome.ok) return;
        last = outcome.error ?? 'failed';
      } finally {
        await driver.close();
      }
    } catch (error) {
      last = firstLines(error);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new GatewayUnavailable(`${operation.method} not served through the gateway within ${timeoutMs} ms: ${last}`);
}

/** Extra Node flags from an environment variable (space-separated). */
function flagsFrom(variable: string): string[] {
  return (process.env[variable] ?? '').split(' ').filter((flag) => flag !== '');
}

/**
 * Extra Node flags for every data-plane node the bench starts (calls, propagation, audit ingest), from
 * PORTCULLIS_BENCH_NODE_FLAGS, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile it under the bench's load.
 */
export function nodeFlags(): string[] {
  return flagsFrom('PORTCULLIS_BENCH_NODE_FLAGS');
}

/** Likewise for the propagation rows' control planes, from PORTCULLIS_BENCH_CONTROL_PLANE_FLAGS. */
export function controlPlaneFlags(): string[] {
  return flagsFrom('PORTCULLIS_BENCH_CONTROL_PLANE_FLAGS');
}

function firstLines(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n').slice(0, 4).join(' | ');
}
