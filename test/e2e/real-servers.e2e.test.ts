import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { connectModernAgent } from '../support/agents.ts';
import { type DataPlaneProcess, eventually } from '../support/gateway.ts';
import {
  callOutcome,
  connectDirect,
  connectThroughGateway,
  listAllTools,
  realServers,
  serverScript,
  startNotesApi,
  writeServerFiles,
  type RealServer,
} from '../support/real-servers.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';

/**
 * A dozen real MCP servers from npm, each once directly (the SDK v1 client over stdio, as an agent
 * without a gateway) and once behind one gateway (a control plane on a fresh schema and one node,
 * each server registered through GraphQL as a STDIO upstream): an agent must see the same tools,
 * byte for byte after the `<upstream>__` prefix, and get the same results for the calls that work
 * offline.
 */
const MAX_EXPOSED_NAME = 64;

let scratch: string;
let api: { url: string; server: Server };
let env: TestEnv;
let node: DataPlaneProcess;
let gatewayAgent: Client;
const direct = new Map<string, Client>();
const directTools = new Map<string, Tool[]>();
let gatewayTools: Tool[];
let secret: string;
let servers: RealServer[];

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'portcullis-real-servers-'));
  writeServerFiles(scratch);
  api = await startNotesApi();
  const context = { scratch, apiUrl: api.url };
  servers = realServers(context, 'direct');
  const behindGateway = realServers(context, 'gateway');
  env = await startTestEnv({ schemaPrefix: 'real_servers', nodes: ['real-servers-node'] });
  node = env.node('real-servers-node');
  // Each server takes seconds of CPU to start: the node starts its upstreams while the direct ones start.
  const registered = (async () => {
    for (const server of behindGateway) {
      const input = {
        name: server.name,
        transport: 'STDIO' as const,
        command: process.execPath,
        args: [serverScript(server), ...server.args],
        env: Object.entries(server.env).map(([name, value]) => ({ name, value })),
        connectTimeoutMs: 120_000,
        callTimeoutMs: 30_000,
      };
      await env.createUpstream(input);
    }
    return (await env.createKey({ name: 'real-servers' })).secret;
  })();
  const connected = Promise.all(
    servers.map(async (server) => {
      const client = await connectDirect(server).catch((error: Error) =>
        Promise.reject(new Error(`${server.name} did not start: ${error.message}`)),
      );
      direct.set(server.name, client);
      directTools.set(server.name, await listAllTools(client));
    }),
  );
  [secret] = await Promise.all([registered, connected]);
  try {
    await eventually(
      'the key works on the node',
      async () => {
        gatewayAgent = await connectThroughGateway(node.mcpUrl, secret).catch(() => gatewayAgent);
        return gatewayAgent !== undefined;
      },
      20_000,
    );
    await eventually(
      "the gateway lists every upstream's tools",
      async () => {
        gatewayTools = await listAllTools(gatewayAgent).catch(() => []);
        return servers.every((server) => gatewayTools.some((tool) => tool.name.startsWith(`${server.name}__`)));
      },
      120_000,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}\nthe node's log:\n${node.process.log.slice(-4_000)}`);
  }
});

after(async () => {
  await gatewayAgent?.close();
  await Promise.allSettled([...direct.values()].map((client) => client.close()));
  await env?.dispose();
  api?.server.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** The gateway's tools of one upstream, with the prefix taken off. */
function throughGateway(tools: readonly Tool[], upstream: string): Tool[] {
  const prefix = `${upstream}__`;
  return tools
    .filter((tool) => tool.name.startsWith(prefix))
    .map((tool) => ({ ...tool, name: tool.name.slice(prefix.length) }));
}

describe('real MCP servers from npm: an agent sees through the gateway what it sees directly', () => {
  test('the suite has a dozen servers of varied authorship, one with more than 150 tools', () => {
    assert.ok(servers.length >= 12, `${servers.length} servers`);
    assert.ok(new Set(servers.map((server) => server.author)).size >= 8);
    assert.ok(
      [...directTools.values()].some((tools) => tools.length > 150),
      JSON.stringify([...directTools].map(([name, tools]) => [name, tools.length])),
    );
  });

  test('twilio: tools whose prefixed name exceeds 64 characters are named to operators, not lost', async () => {
    const refused = directTools.get('twilio')!.filter((tool) => `twilio__${tool.name}`.length > MAX_EXPOSED_NAME);
    assert.ok(refused.length > 0 && directTools.get('twilio')!.length - refused.length > 150);
    const query = '{ upstreams { name status { error } } }';
    let error = '';
    // The node's report reaches GraphQL through the control plane's write-behind: wait for the one naming them.
    await eventually(
      "the twilio upstream's status names the tools it could not expose",
      async () => {
        type Upstreams = { upstreams: { name: string; status: { error: string | null }[] }[] };
        const { upstreams } = await env.gqlOk<Upstreams>(query);
        error = upstreams.find((upstream) => upstream.name === 'twilio')?.status[0]?.error ?? '';
        return error.includes('not exposed');
      },
      15_000,
    ).catch(() => undefined);
    for (const tool of refused) assert.ok(error.includes(`"${tool.name}" not exposed`), `${tool.name} in ${error}`);
  });

  for (const name of [
    'everything',
    'memory',
    'fs',
    'thinking',
    'openapi',
    'playwright',
    'context7',
    'tavily',
    'brave',
    'notion',
    'hubspot',
    'twilio',
  ]) {
    test(`${name}: tool names, descriptions, input and output schemas and annotations are the server's own`, () => {
      const own = directTools.get(name)!;
      // A name longer than 64 characters once prefixed is refused by design (model APIs reject it).
      const exposable = own.filter((tool) => `${name}__${tool.name}`.length <= MAX_EXPOSED_NAME);
      assert.deepEqual(throughGateway(gatewayTools, name), exposable);
    });

    test(`${name}: a 2026-07-28 agent (SDK v2) sees the same tools`, async () => {
      const modern = await connectModernAgent(node.mcpUrl, secret);
      try {
        const listed: Tool[] = [];
        let cursor: string | undefined;
        do {
          const page = await modern.listTools(cursor === undefined ? {} : { cursor });
          listed.push(...(page.tools as Tool[]));
          cursor = page.nextCursor;
        } while (cursor !== undefined);
        // 2026-07-28 deleted `execution` (tasks) from Tool: the SDK v2 client drops it in that era, from any server.
        const expected = throughGateway(gatewayTools, name).map(({ execution: _deleted, ...tool }) => tool);
        assert.deepEqual(throughGateway(listed, name), expected);
      } finally {
        await modern.close();
      }
    });

    test(`${name}: calls that work offline give the server's own results`, async () => {
      const server = servers.find((candidate) => candidate.name === name)!;
      for (const call of server.calls) {
        const own = await callOutcome(direct.get(name)!, call.name, call.arguments);
        const relayed = await callOutcome(gatewayAgent, `${name}__${call.name}`, call.arguments);
        assert.deepEqual(relayed, own, `${call.name} ${JSON.stringify(call.arguments)}`);
      }
    });
  }
});
