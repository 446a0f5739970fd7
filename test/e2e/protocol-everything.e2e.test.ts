// Not on startTestEnv: it drives a node's UpstreamPool in this process (PoolHarness), with no control plane.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CallToolResultSchema,
  CreateTaskResultSchema,
  ElicitRequestSchema,
  GetTaskResultSchema,
  McpError,
} from '@modelcontextprotocol/sdk/types.js';
import { UpstreamState } from '../../proto/gen/portcullis/v1/config.ts';
import { buildConfig, startServer, testKey, type RunningServer } from '../support/mcp-server-harness.ts';
import { legacyAgent, modernAgent, sseAgent } from '../support/protocol-agents.ts';
import { PoolHarness, everythingStdio, httpUpstream } from '../support/upstream-pool-harness.ts';
import { startEverythingHttp, type RunningProcess } from '../support/processes.ts';
import { eventually } from '../support/eventually.ts';

/**
 * A node (the real UpstreamPool behind the real HTTP server) in front of real
 * @modelcontextprotocol/server-everything, over stdio ("everything") and Streamable HTTP ("web"),
 * driven by the official v1 and v2 SDK clients.
 */
let harness: PoolHarness;
let server: RunningServer;
let web: { process: RunningProcess; url: string };
const key = testKey('k1', ['everything__*', 'web__*']);

before(async () => {
  web = await startEverythingHttp();
  harness = PoolHarness.start([everythingStdio('everything'), httpUpstream('web', web.url)]);
  await harness.waitForState('everything', UpstreamState.UPSTREAM_STATE_READY);
  await harness.waitForState('web', UpstreamState.UPSTREAM_STATE_READY);
  server = await startServer(harness.pool, buildConfig([key]));
});

after(async () => {
  await server?.close();
  await harness?.pool.close();
  await web?.process.stop();
});

test(`DN-RESOURCES-LIST DN-RESOURCES-READ DN-RESOURCES-TEMPLATES-LIST DN-CAPABILITIES-MERGED: server-everything \
resources through the gateway (stdio and Streamable HTTP upstreams)`, async () => {
  const { client } = await legacyAgent(server.url, key.secret);
  const capabilities = client.getServerCapabilities();
  assert.ok(capabilities?.resources && capabilities.prompts && capabilities.completions, JSON.stringify(capabilities));
  const resources = (await client.listResources()).resources;
  assert.ok(
    resources.some((r) => r.uri.startsWith('demo://resource/static/') || r.uri.startsWith('test://')),
    JSON.stringify(resources.slice(0, 3)),
  );
  const first = resources[0]!;
  const read = await client.readResource({ uri: first.uri });
  assert.equal(read.contents[0]?.uri, first.uri);
  const templates = (await client.listResourceTemplates()).resourceTemplates;
  assert.ok(templates.length > 0);
  await client.close();
  const modern = await modernAgent(server.url, key.secret);
  const modernRead = await modern.readResource({ uri: first.uri });
  assert.equal(modernRead.contents[0]?.uri, first.uri);
  await modern.close();
});

test(`DN-PROMPTS-LIST DN-PROMPTS-GET DN-COMPLETION: server-everything prompts and completion through the \
gateway`, async () => {
  const { client } = await legacyAgent(server.url, key.secret);
  const prompts = (await client.listPrompts()).prompts;
  const simple = prompts.find((p) => p.name.startsWith('everything__') && (p.arguments ?? []).length === 0);
  assert.ok(simple, JSON.stringify(prompts.map((p) => p.name)));
  const got = await client.getPrompt({ name: simple.name });
  assert.ok(got.messages.length > 0);
  const withArgs = prompts.find((p) => p.name.startsWith('everything__') && (p.arguments ?? []).length > 0);
  if (withArgs !== undefined) {
    const completion = await client.complete({
      ref: { type: 'ref/prompt', name: withArgs.name },
      argument: { name: withArgs.arguments![0]!.name, value: '' },
    });
    assert.ok(Array.isArray(completion.completion.values));
  }
  await client.close();
});

/**
 * The SDK clients dispatch a progress notification a microtask later but settle the response at
 * once, so a last progress that arrives in the same read as the result is dropped by the client
 * itself (directly against server-everything too). Every earlier step must arrive, in order.
 */
function assertProgress(seen: number[]): void {
  assert.ok(seen.length >= 2, `progress arrived: ${JSON.stringify(seen)}`);
  assert.deepEqual(seen, [1, 2, 3].slice(0, seen.length));
}

test(`DN-PROGRESS DN-TRANSPORT-SSE-RESPONSE: progress from trigger-long-running-operation reaches v1 and v2 \
agents`, async () => {
  const { client } = await legacyAgent(server.url, key.secret);
  const seen: number[] = [];
  const result = await client.callTool(
    { name: 'everything__trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } },
    undefined,
    { onprogress: (p) => void seen.push(p.progress) },
  );
  assert.equal(result.isError ?? false, false);
  assertProgress(seen);
  await client.close();
  const modern = await modernAgent(server.url, key.secret);
  const modernSeen: number[] = [];
  await modern.callTool(
    { name: 'web__trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } },
    { onprogress: (p) => void modernSeen.push(p.progress) },
  );
  assertProgress(modernSeen);
  await modern.close();
});

test('DN-CANCEL: cancelling a long-running call aborts it upstream; the session keeps working', async () => {
  const { client } = await legacyAgent(server.url, key.secret);
  const controller = new AbortController();
  const started = Date.now();
  const call = client.callTool(
    { name: 'everything__trigger-long-running-operation', arguments: { duration: 10, steps: 10 } },
    undefined,
    { signal: controller.signal },
  );
  setTimeout(() => controller.abort('enough'), 200);
  await assert.rejects(call);
  assert.ok(Date.now() - started < 5000);
  assert.deepEqual(
    (await client.callTool({ name: 'everything__echo', arguments: { message: 'still here' } })).content,
    [{ type: 'text', text: 'Echo: still here' }],
  );
  await client.close();
});

/** A v1 agent that declines every elicitation, counting them. */
async function decliningAgent(): Promise<{
  client: Awaited<ReturnType<typeof legacyAgent>>['client'];
  asked: () => number;
}> {
  const { client } = await legacyAgent(server.url, key.secret, { capabilities: { elicitation: {} } });
  let asked = 0;
  client.setRequestHandler(ElicitRequestSchema, async () => {
    asked += 1;
    return { action: 'decline' };
  });
  return { client, asked: () => asked };
}

/**
 * Starts a long call on the stdio upstream; resolves once it is running there (its first progress arrived), with the
 * call.
 */
async function longCallInFlight(
  client: Awaited<ReturnType<typeof legacyAgent>>['client'],
): Promise<{ done: Promise<unknown> }> {
  let running!: () => void;
  const started = new Promise<void>((resolve) => (running = resolve));
  const call = client.callTool(
    { name: 'everything__trigger-long-running-operation', arguments: { duration: 1, steps: 5 } },
    undefined,
    { onprogress: () => running() },
  );
  await started;
  // Wrapped: an async function returning the promise itself would wait for it.
  return { done: call };
}

test(`DN-SERVER-REQUEST: over a stdio upstream, an elicitation raised while only one session's calls are in flight is \
asked on that session; with another session's call in flight it is refused, not guessed`, async () => {
  const own = await decliningAgent();
  const long = await longCallInFlight(own.client);
  const elicited = await own.client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
  assert.equal(elicited.isError ?? false, false, JSON.stringify(elicited));
  assert.match(JSON.stringify(elicited.content), /decline/i);
  assert.equal(own.asked(), 1);
  await long.done;

  const other = await decliningAgent();
  const othersLong = await longCallInFlight(other.client);
  const refused = await own.client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
  assert.match(
    JSON.stringify(refused),
    /cannot relate elicitation\/create to an agent's request \(2 requests of different agents in flight/,
  );
  assert.deepEqual([own.asked(), other.asked()], [1, 0]);
  await othersLong.done;
  await own.client.close();
  await other.client.close();
});

test(`DN-TRANSPORT-LEGACY-SSE: the v1 SSEClientTransport calls server-everything through GET /sse + POST \
/messages`, async () => {
  const { client } = await sseAgent(server.url, key.secret);
  assert.deepEqual((await client.callTool({ name: 'web__echo', arguments: { message: 'old' } })).content, [
    { type: 'text', text: 'Echo: old' },
  ]);
  await client.close();
});

test('DN-TASKS: a task-augmented call to server-everything is routed by its wrapped task id', async () => {
  const { client } = await legacyAgent(server.url, key.secret);
  assert.ok(
    client.getServerCapabilities()?.tasks,
    'the gateway advertises the tasks capability server-everything declares',
  );
  const tools = (await client.listTools()).tools;
  const taskTool = tools.find(
    (tool) =>
      tool.name.startsWith('everything__') &&
      (tool.execution as { taskSupport?: string } | undefined)?.taskSupport !== undefined &&
      (tool.execution as { taskSupport?: string }).taskSupport !== 'forbidden',
  );
  assert.ok(taskTool, 'server-everything offers a task-capable tool');
  const created = await client.request(
    { method: 'tools/call', params: { name: taskTool.name, arguments: { topic: 'gateways' }, task: { ttl: 60_000 } } },
    CreateTaskResultSchema,
  );
  assert.match(created.task.taskId, /^pct\./);
  const getTask = { method: 'tasks/get' as const, params: { taskId: created.task.taskId } };
  const status = await eventually(
    'the task to leave working',
    async () => {
      const { status } = await client.request(getTask, GetTaskResultSchema);
      return status !== 'working' && status;
    },
    15_000,
    100,
  );
  if (status === 'completed') {
    const result = await client.request(
      { method: 'tasks/result', params: { taskId: created.task.taskId } },
      CallToolResultSchema,
    );
    assert.ok(Array.isArray(result.content));
  }
  await assert.rejects(
    client.request({ method: 'tasks/get', params: { taskId: 'made-up' } }, GetTaskResultSchema),
    (e: unknown) => e instanceof McpError && e.code === -32602,
  );
  await client.close();
});

test('DN-RESOURCES-SUBSCRIBE: subscribing to a server-everything resource is relayed and acknowledged', async () => {
  const { client } = await legacyAgent(server.url, key.secret);
  const uri = (await client.listResources()).resources.find(
    (r) => r.uri.startsWith('demo://') || r.uri.startsWith('test://'),
  )!.uri;
  await client.subscribeResource({ uri });
  await client.unsubscribeResource({ uri });
  await client.close();
});
