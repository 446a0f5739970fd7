/**
 * Running the official MCP conformance suite (`@modelcontextprotocol/conformance`) against a server URL,
 * and starting the conformance upstream fixture. Shared by `npm run conformance` and the e2e tests.
 *
 * The suite needs Node ≥ 22 (`fs.globSync`): it runs on the Node running now when that is new enough, else on
 * a Node binary package fetched from the npm registry into a cache (`scripts/node-runtime.ts`).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connectLegacyAgent } from './agents.ts';
import { CREATE_KEY, CREATE_UPSTREAM, graphqlOk } from './graphql.ts';
import { nodeFor } from '../../scripts/node-runtime.ts';
import { REPO_ROOT, RunningProcess, freePort, startDev } from './processes.ts';
import { eventually } from './eventually.ts';

export const CONFORMANCE_CLI = resolve(REPO_ROOT, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
/** The oldest Node the conformance CLI runs on (it calls `fs.globSync`). */
export const CONFORMANCE_MIN_NODE_MAJOR = 22;
export const FIXTURE_MAIN = resolve(REPO_ROOT, 'test/fixtures/conformance-server/main.ts');
/** The tsx loader as an absolute URL, so a child started from any working directory can run TypeScript. */
export const TSX_LOADER = import.meta.resolve('tsx');

/**
 * The data-plane option that maps requests without credentials to one designated virtual key
 * (anonymous access, off by default). The suite's client sends no credentials (its server mode has no
 * header or auth option), so without it every request through the gateway is answered 401;
 * `npm run conformance` starts the gateway's node with `<flag> <key id>`.
 */
export const GATEWAY_ANONYMOUS_KEY_FLAG: string | undefined = '--anonymous-key';

/**
 * Extra `CreateUpstreamInput` fields that make the gateway expose the upstream's names unprefixed.
 * The suite calls bare names (`test_simple_text`, `test_simple_prompt`); the gateway exposes
 * `<upstream>__<name>`. When GraphQL has the field, put it here (e.g. `{ exposeUnprefixed: true }`).
 */
export const GATEWAY_UNPREFIXED_UPSTREAM_INPUT: Record<string, unknown> = { exposeUnprefixed: true };

/** Whether the gateway has what the suite needs to be run through it (see the two constants above). */
export function gatewayConformanceReady(): boolean {
  return GATEWAY_ANONYMOUS_KEY_FLAG !== undefined && Object.keys(GATEWAY_UNPREFIXED_UPSTREAM_INPUT).length > 0;
}

/**
 * What @modelcontextprotocol/conformance 0.2.0-alpha.12 runs in each suite against the conformance upstream (scenarios,
 * passed checks).
 */
export const SUITE_COUNTS: Readonly<Record<string, { scenarios: number; passed: number }>> = {
  'active 2025': { scenarios: 31, passed: 73 },
  'active 2026-07-28': { scenarios: 20, passed: 41 },
  'draft 2026-07-28': { scenarios: 19, passed: 103 },
};

/** One suite selection of the CLI: what `npm run conformance` runs for every target. */
export interface SuiteSpec {
  name: string;
  args: string[];
  /** Whether a failure here (or a count differing from the direct run) fails the run. */
  gating: boolean;
  what: string;
}

/**
 * In 0.2.0-alpha.12 the active suite holds the 2025-era scenarios (31) and, at `--spec-version
 * 2026-07-28`, the stateless-era ones (20). The scenarios still being settled for 2026-07-28
 * (stateless, caching, header validation, `input_required`, resource-not-found) are the `draft` suite;
 * `pending` holds scenarios the suite's own reference server cannot pass yet (JSON Schema 2020-12, SSE
 * polling, the tasks and skills extensions).
 */
export const SUITES: readonly SuiteSpec[] = [
  { name: 'active 2025', args: [], gating: true, what: '2025-era active suite' },
  {
    name: 'active 2026-07-28',
    args: ['--spec-version', '2026-07-28'],
    gating: true,
    what: 'active suite at 2026-07-28',
  },
  {
    name: 'draft 2026-07-28',
    args: ['--suite', 'draft'],
    gating: false,
    what: 'scenarios being settled for 2026-07-28',
  },
  {
    name: 'pending',
    args: ['--suite', 'pending'],
    gating: false,
    what: 'pending scenarios (incl. tasks/skills extensions)',
  },
];

export interface ScenarioResult {
  scenario: string;
  passed: number;
  failed: number;
}

export interface FailedCheck {
  scenario: string;
  id: string;
  status: string;
  message: string;
}

export interface SuiteRun {
  suite: string;
  url: string;
  exitCode: number | null;
  durationMs: number;
  scenarios: ScenarioResult[];
  passed: number;
  failed: number;
  /** FAILURE (and WARNING) checks, from the suite's checks.json files. */
  failures: FailedCheck[];
  outputDir: string;
  output: string;
}

/** Parses the suite's `=== SUMMARY ===` block: `✓ name: N passed, M failed` lines and `Total: N passed, M failed`. */
export function parseSummary(
  output: string,
): { scenarios: ScenarioResult[]; passed: number; failed: number } | undefined {
  const summaryAt = output.lastIndexOf('=== SUMMARY ===');
  if (summaryAt < 0) return undefined;
  const summary = output.slice(summaryAt);
  const scenarios: ScenarioResult[] = [];
  for (const match of summary.matchAll(/^[✓✗]\s+(\S+):\s+(\d+) passed, (\d+) failed/gmu)) {
    scenarios.push({ scenario: match[1]!, passed: Number(match[2]), failed: Number(match[3]) });
  }
  const total = /^Total:\s+(\d+) passed, (\d+) failed/m.exec(summary);
  if (!total) return undefined;
  return { scenarios, passed: Number(total[1]), failed: Number(total[2]) };
}

/** Runs the conformance CLI's `server` mode against `url` with the given suite arguments. */
export async function runSuite(
  url: string,
  suite: SuiteSpec,
  options: { outputRoot?: string; extraArgs?: string[]; timeoutMs?: number } = {},
): Promise<SuiteRun> {
  const outputDir = await mkdtemp(join(options.outputRoot ?? tmpdir(), `${suite.name.replace(/\W+/g, '-')}-`));
  const args = [CONFORMANCE_CLI, 'server', '--url', url, ...suite.args, ...(options.extraArgs ?? []), '-o', outputDir];
  const started = Date.now();
  const node = await nodeFor({ minimumMajor: CONFORMANCE_MIN_NODE_MAJOR });
  const { code, output } = await runProcess(node, args, outputDir, options.timeoutMs ?? 10 * 60_000);
  const durationMs = Date.now() - started;
  const parsed = parseSummary(output);
  return {
    suite: suite.name,
    url,
    exitCode: code,
    durationMs,
    scenarios: parsed?.scenarios ?? [],
    passed: parsed?.passed ?? 0,
    failed: parsed?.failed ?? (code === 0 ? 0 : 1),
    failures: await readFailures(outputDir),
    outputDir,
    output,
  };
}

function runProcess(
  command: string,
  args: string[],
  cwd: string,
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      output += `\n[killed after ${timeoutMs} ms]\n`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', fail);
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, output });
    });
  });
}

async function readFailures(outputDir: string): Promise<FailedCheck[]> {
  const failures: FailedCheck[] = [];
  for (const entry of await readdir(outputDir).catch(() => [] as string[])) {
    const file = join(outputDir, entry, 'checks.json');
    if (!existsSync(file)) continue;
    const scenario = entry.replace(/^server-/, '').replace(/-\d{4}-\d\d-\d\dT[\d-]+Z$/, '');
    try {
      const checks = JSON.parse(await readFile(file, 'utf8')) as {
        id: string;
        status: string;
        errorMessage?: string;
      }[];
      for (const check of checks) {
        if (check.status === 'FAILURE' || check.status === 'WARNING') {
          failures.push({ scenario, id: check.id, status: check.status, message: check.errorMessage ?? '' });
        }
      }
    } catch {
      // a scenario that crashed may leave no readable checks; the summary still counts it
    }
  }
  return failures.sort((a, b) => a.scenario.localeCompare(b.scenario) || a.id.localeCompare(b.id));
}

/**
 * The conformance upstream over Streamable HTTP on a free port (or `fixedPort`, to restart one); resolves once it
 * listens.
 */
export async function startConformanceFixtureHttp(
  env: NodeJS.ProcessEnv = {},
  fixedPort?: number,
): Promise<{ process: RunningProcess; url: string }> {
  const port = fixedPort ?? (await freePort());
  const child = new RunningProcess(
    'conformance upstream (http)',
    process.execPath,
    ['--import', TSX_LOADER, FIXTURE_MAIN, '--http', String(port)],
    env,
  );
  const [, url] = await child.waitFor(/listening on (http:\/\/\S+)/, 30_000);
  return { process: child, url: url! };
}

/** The command line that runs the conformance upstream over stdio (for a STDIO upstream or an SDK client). */
export function conformanceFixtureStdioCommand(): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', TSX_LOADER, FIXTURE_MAIN, '--stdio'] };
}

/** Whether the suite is installed (a dev dependency); the Node it runs on is fetched when first needed. */
export function conformanceSuiteInstalled(): boolean {
  return existsSync(CONFORMANCE_CLI);
}

export const CONFORMANCE_VERSION_FILE = resolve(
  REPO_ROOT,
  'node_modules/@modelcontextprotocol/conformance/package.json',
);

export async function conformanceVersion(): Promise<string> {
  return (JSON.parse(await readFile(CONFORMANCE_VERSION_FILE, 'utf8')) as { version: string }).version;
}

/**
 * `portcullis dev` on a fresh data dir with the conformance upstream and one virtual key; resolves when
 * the upstream's tools are listed through the gateway. With GATEWAY_ANONYMOUS_KEY_FLAG, restarts the gateway
 * (same data dir and ports) so credential-less requests act as that key.
 */
export async function startConformanceGateway(
  upstream: Record<string, unknown>,
): Promise<{ mcpUrl: string; mcpPort: number; secret: string; stop(): Promise<void> }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-conformance-gw-'));
  const ports = { graphql: await freePort(), grpc: await freePort(), mcp: await freePort() };
  const start = async (extra: string[]): Promise<{ process: RunningProcess; adminToken: string }> => {
    const started = await startDev(dataDir, ports, ['--log-level', 'warn', ...extra]);
    await started.process.waitFor(/MCP endpoint \(agents\):/, 30_000);
    return started;
  };
  let running = await start([]);
  const graphqlUrl = `http://127.0.0.1:${ports.graphql}/graphql`;
  const mcpUrl = `http://127.0.0.1:${ports.mcp}/mcp`;
  try {
    await graphqlOk(graphqlUrl, running.adminToken, CREATE_UPSTREAM, { input: upstream });
    const created = await graphqlOk<{ createVirtualKey: { secret: string; key: { id: string } } }>(
      graphqlUrl,
      running.adminToken,
      CREATE_KEY,
      {
        input: { name: 'conformance-suite' },
      },
    );
    const { secret, key } = created.createVirtualKey;
    if (GATEWAY_ANONYMOUS_KEY_FLAG !== undefined) {
      await running.process.stop();
      running = await start([GATEWAY_ANONYMOUS_KEY_FLAG, key.id]);
    }
    await eventually(
      'the conformance upstream is listed through the gateway',
      async () => {
        const { client } = await connectLegacyAgent(mcpUrl, secret).catch(() => ({ client: undefined }));
        if (!client) return false;
        try {
          return (await client.listTools()).tools.some((tool) => tool.name.endsWith('test_simple_text'));
        } finally {
          await client.close();
        }
      },
      60_000,
    );
    return {
      mcpUrl,
      mcpPort: ports.mcp,
      secret,
      stop: async () => {
        await running.process.stop();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await running.process.stop();
    throw new Error(
      `gateway setup failed: ${error instanceof Error ? error.message : String(error)}\n${running.process.log}`,
    );
  }
}
