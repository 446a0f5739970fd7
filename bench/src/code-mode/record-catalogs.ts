/**
 * `tsx bench/src/code-mode/record-catalogs.ts [server…]`: launches real MCP servers from npm over stdio,
 * each with fake credentials (enough to start and list tools; nothing reaches a vendor), records its
 * `tools/list` output (every page) and writes `bench/fixtures/catalogs/<server>.json` with the package,
 * its version and how it was launched. Servers in devDependencies run from node_modules; the others
 * with `npx -y <package>@<version>` (pinned), which needs the npm registry once. Run it again to
 * re-record; the fixtures are committed, so the benchmark itself needs no registry.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { realServers, serverScript, writeServerFiles } from '../../../test/support/real-servers.ts';
import { REPO_ROOT } from '../processes.ts';
import { CATALOG_DIR, type Catalog, CatalogSchema, catalogFile } from './catalog.ts';

interface Recording {
  readonly server: string;
  readonly pkg: string;
  readonly version: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** What the fixture says about the launch (no scratch paths, fake credentials by name). */
  readonly launched: string;
}

interface NpxServer extends Omit<Recording, 'command' | 'args' | 'launched'> {
  readonly extraArgs?: readonly string[];
}

/**
 * Real servers on npm that are not devDependencies: recorded once with `npx -y`, versions pinned here.
 * Tried and left out (they do not list tools offline here): @modelcontextprotocol/server-gitlab 2025.4.25 (its
 * input schemas lack `type: "object"`, which the SDK client refuses), @neondatabase/mcp-server-neon 0.6.5,
 * @stripe/mcp 0.3.3, @wonderwhy-er/desktop-commander 0.2.52 (no answer to initialize within 3 minutes),
 * @azure-devops/mcp 2.10.0, @heroku/mcp-server 1.2.8 (exit at start), @supabase/mcp-server-supabase 0.13.0
 * (fetches at listing), mongodb-mcp-server 3.0.4 and @atlassian-dc-mcp/jira 0.34.0 (do not install).
 */
const NPX_SERVERS: readonly NpxServer[] = [
  {
    server: 'github',
    pkg: '@modelcontextprotocol/server-github',
    version: '2025.4.8',
    env: { GITHUB_PERSONAL_ACCESS_TOKEN: 'ghp_fake' },
  },
  {
    server: 'slack',
    pkg: '@modelcontextprotocol/server-slack',
    version: '2025.4.25',
    env: { SLACK_BOT_TOKEN: 'xoxb-fake', SLACK_TEAM_ID: 'T00000000' },
  },
  {
    server: 'gmaps',
    pkg: '@modelcontextprotocol/server-google-maps',
    version: '0.6.2',
    env: { GOOGLE_MAPS_API_KEY: 'fake' },
  },
  { server: 'kubernetes', pkg: 'mcp-server-kubernetes', version: '4.1.7', env: {} },
  {
    server: 'circleci',
    pkg: '@circleci/mcp-server-circleci',
    version: '0.20.0',
    env: { CIRCLECI_TOKEN: 'fake' },
  },
  {
    server: 'sentry',
    pkg: '@sentry/mcp-server',
    version: '0.39.0',
    env: { SENTRY_ACCESS_TOKEN: 'fake' },
  },
  { server: 'playwright-ea', pkg: '@executeautomation/playwright-mcp-server', version: '1.0.12', env: {} },
  { server: 'firecrawl', pkg: 'firecrawl-mcp', version: '3.26.0', env: { FIRECRAWL_API_KEY: 'fc-fake' } },
  { server: 'exa', pkg: 'exa-mcp-server', version: '3.4.1', env: { EXA_API_KEY: 'fake' } },
  { server: 'pinecone', pkg: '@pinecone-database/mcp', version: '0.3.0', env: { PINECONE_API_KEY: 'fake' } },
];

/** More of Twilio's APIs from the same devDependency (`--services`): real definitions, a catalog of their own. */
const TWILIO_SERVICES = { server: 'twilio-messaging', services: 'twilio_messaging_v1,twilio_verify_v2' };

/** How a launch reads in a fixture: no scratch paths, credentials (which are fakes anyway) never spelled out. */
function describeLaunch(
  command: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  scratch: string,
): string {
  const shown = args.map((a) => (/secret|fake/i.test(a) ? '<fake credential>' : a.replace(scratch, '<scratch>')));
  const vars = Object.entries(env).map(([name, value]) =>
    /key|token|secret/i.test(name) ? `${name}=<fake>` : `${name}=${value.replace(scratch, '<scratch>')}`,
  );
  const shownEnv = vars.length ? ` (env ${vars.join(' ')})` : '';
  return `${command}${shown.length ? ` ${shown.join(' ')}` : ''}${shownEnv}, stdio`;
}

/** The devDependency servers of the test suite (test/support/real-servers.ts); openapi is left out (its tools
 * come from an OpenAPI document written for the tests, not from a published server). */
function devDependencyRecordings(scratch: string): Recording[] {
  const servers = realServers({ scratch, apiUrl: 'http://127.0.0.1:9' }, 'record').filter((s) => s.name !== 'openapi');
  const twilio = servers.find((s) => s.name === 'twilio')!;
  const more = {
    ...twilio,
    name: TWILIO_SERVICES.server,
    args: [...twilio.args, '--services', TWILIO_SERVICES.services],
  };
  return [...servers, more].map((s) => {
    const version = (
      JSON.parse(readFileSync(resolve(REPO_ROOT, 'node_modules', s.pkg, 'package.json'), 'utf8')) as {
        version: string;
      }
    ).version;
    return {
      server: s.name === 'fs' ? 'filesystem' : s.name,
      pkg: s.pkg,
      version,
      command: process.execPath,
      args: [serverScript(s), ...s.args],
      env: s.env,
      launched: describeLaunch(`node node_modules/${s.pkg}/${s.script}`, s.args, s.env, scratch),
    };
  });
}

function npxRecordings(scratch: string): Recording[] {
  return NPX_SERVERS.map((s) => ({
    ...s,
    command: 'npx',
    args: ['-y', `${s.pkg}@${s.version}`, ...(s.extraArgs ?? [])],
    launched: describeLaunch(`npx -y ${s.pkg}@${s.version}`, s.extraArgs ?? [], s.env, scratch),
  }));
}

async function record(r: Recording): Promise<Catalog> {
  const client = new Client(
    { name: 'portcullis-catalog-recorder', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true } } },
  );
  const transport = new StdioClientTransport({
    command: r.command,
    args: [...r.args],
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...r.env },
    stderr: 'ignore',
    cwd: REPO_ROOT,
  });
  await client.connect(transport, { timeout: 180_000 });
  try {
    const tools: Tool[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: 60_000 });
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    const info = client.getServerVersion() ?? { name: r.pkg, version: r.version };
    return CatalogSchema.parse({
      server: r.server,
      package: r.pkg,
      version: r.version,
      launched: r.launched,
      recordedAt: new Date().toISOString(),
      serverInfo: info,
      protocolVersion: (transport as { protocolVersion?: string }).protocolVersion,
      tools,
    });
  } finally {
    await client.close();
  }
}

async function main(): Promise<void> {
  const only = new Set(process.argv.slice(2));
  const scratch = mkdtempSync(join(tmpdir(), 'portcullis-record-'));
  writeServerFiles(scratch);
  mkdirSync(CATALOG_DIR, { recursive: true });
  try {
    const all = [...devDependencyRecordings(scratch), ...npxRecordings(scratch)].filter(
      (r) => only.size === 0 || only.has(r.server),
    );
    let total = 0;
    for (const r of all) {
      try {
        const catalog = await record(r);
        writeFileSync(catalogFile(r.server), `${JSON.stringify(catalog, null, 2)}\n`);
        total += catalog.tools.length;
        process.stderr.write(`${r.server}: ${catalog.tools.length} tools (${r.pkg}@${r.version})\n`);
      } catch (error) {
        process.stderr.write(`${r.server}: not recorded: ${error instanceof Error ? error.message : String(error)}\n`);
      }
    }
    process.stderr.write(`${total} tools recorded\n`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
