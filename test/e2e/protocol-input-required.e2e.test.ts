import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Client as ModernClient } from '@modelcontextprotocol/client';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { createLogger } from '../../common/src/index.ts';
import { createDataPlaneServer, type DataPlaneServer } from '../../data-plane/src/http/server.ts';
import type { AppliedConfig } from '../../data-plane/src/config/applied-config.ts';
import { RpcErrorCode } from '../../data-plane/src/mcp/protocol.ts';
import { UpstreamState } from '../../proto/gen/portcullis/v1/config.ts';
import { conformanceFixtureStdioCommand, startConformanceFixtureHttp } from '../support/conformance.ts';
import { buildConfig, sessionKey, testKey } from '../support/mcp-server-harness.ts';
import type { RunningProcess } from '../support/processes.ts';
import { MODERN, legacyAgent, modernAgent } from '../support/protocol-agents.ts';
import { SdkHttpFixture } from '../support/upstream-sdk-server.ts';
import { PoolHarness, everythingStdio, httpUpstream, stdioUpstream, until } from '../support/upstream-pool-harness.ts';

/**
 * Server-to-client input for 2026-07-28 agents through a node (the real UpstreamPool behind the
 * real HTTP server): an upstream's need for input, whether it is a 2025-era server sending
 * `elicitation/create` / `sampling/createMessage` / `roots/list` during the call or a 2026-07-28
 * server answering `input_required`, reaches a 2026-07-28 agent (the official SDK v2 client pinned
 * to 2026-07-28) as an `input_required` result with gateway-signed request state; its retry
 * completes the waiting upstream call. Upstreams: the conformance fixture (2026-07-28) over stdio
 * and Streamable HTTP, server-everything (2025) over stdio, an SDK server in 2025 mode over
 * Streamable HTTP.
 */

const SESSION_KEYS = [sessionKey('s1')];
const key = testKey('k1', ['*']);
const otherKey = testKey('k2', ['*']);
let config: AppliedConfig;
let harness: PoolHarness;
let confHttp: { process: RunningProcess; url: string };
let legacyHttp: SdkHttpFixture;
/** node-a and node-b share the pool and session keys (two nodes of one deployment); node-c lets parked calls expire fast. */
let nodeA: Node;
let nodeB: Node;
let nodeC: Node;

interface Node {
  readonly server: DataPlaneServer;
  readonly url: URL;
}

async function startNode(nodeId: string, ttlMs?: number): Promise<Node> {
  const server = createDataPlaneServer({
    getConfig: () => config,
    upstreams: harness.pool,
    logger: createLogger({ level: 'silent' }),
    maxBodyBytes: 256 * 1024,
    serverInfo: { name: 'portcullis-test', version: '0.0.0' },
    nodeId,
    ...(ttlMs === undefined ? {} : { inputExchanges: { ttlMs } }),
  });
  server.server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  return { server, url: new URL(`http://127.0.0.1:${(server.server.address() as AddressInfo).port}/mcp`) };
}

before(async () => {
  config = buildConfig([key, otherKey], SESSION_KEYS);
  confHttp = await startConformanceFixtureHttp();
  legacyHttp = await SdkHttpFixture.start('sessionful-2025');
  const stdio = conformanceFixtureStdioCommand();
  harness = PoolHarness.start([
    stdioUpstream('conf', stdio.command, stdio.args),
    httpUpstream('confweb', confHttp.url),
    everythingStdio('everything'),
    httpUpstream('legacyweb', legacyHttp.url),
    everythingStdio('doomed'),
  ]);
  for (const name of ['conf', 'confweb', 'everything', 'legacyweb', 'doomed']) await harness.waitForState(name, UpstreamState.UPSTREAM_STATE_READY, 30_000);
  nodeA = await startNode('node-a');
  nodeB = await startNode('node-b');
  nodeC = await startNode('node-c', 300);
});

after(async () => {
  for (const node of [nodeA, nodeB, nodeC]) await node?.server.close();
  await harness?.pool.close();
  await confHttp?.process.stop();
  await legacyHttp?.stop();
});

/** What a 2026-07-28 agent that can answer every kind of input says (and how often it was asked). */
interface Answers {
  elicitations: string[];
  samplings: number;
  roots: number;
}

/** What the agent's user types into each field a form asks for. */
const FORM_ANSWERS: Readonly<Record<string, string>> = { name: 'Alice', colour: 'green', color: 'blue', context: 'tests' };

/**
 * The SDK v2 client pinned to 2026-07-28, able to answer every kind of input: forms whose fields
 * are all in FORM_ANSWERS are accepted with those, others declined; sampling says "Paris".
 */
async function inputAgent(url: URL): Promise<{ client: ModernClient; answers: Answers }> {
  const answers: Answers = { elicitations: [], samplings: 0, roots: 0 };
  const client = await modernAgent(url, key.secret, { capabilities: { elicitation: { form: {} }, sampling: {}, roots: {} } });
  client.setRequestHandler('elicitation/create', async (request) => {
    answers.elicitations.push(String(request.params.message));
    const fields = Object.keys((request.params as { requestedSchema?: { properties?: Record<string, unknown> } }).requestedSchema?.properties ?? {});
    if (!fields.every((field) => field in FORM_ANSWERS)) return { action: 'decline' };
    return { action: 'accept', content: Object.fromEntries(fields.map((field) => [field, FORM_ANSWERS[field]!])) };
  });
  client.setRequestHandler('sampling/createMessage', async () => {
    answers.samplings += 1;
    return { role: 'assistant', content: { type: 'text', text: 'Paris' }, model: 'test-model' };
  });
  client.setRequestHandler('roots/list', async () => {
    answers.roots += 1;
    return { roots: [{ uri: 'file:///workspace', name: 'workspace' }] };
  });
  return { client, answers };
}

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content;
  return content?.map((c) => c.text ?? '').join('') ?? '';
}

interface WireReply {
  status: number;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: Record<string, unknown> };
}

/** A raw 2026-07-28 request (envelope in `_meta`, standard headers), as an agent without an SDK sends it. */
async function post(url: URL, secret: string, method: string, params: Record<string, unknown>): Promise<WireReply> {
  const envelope = { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': { elicitation: {}, sampling: {}, roots: {} } };
  const name = typeof params['name'] === 'string' ? { 'mcp-name': params['name'] } : {};
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${secret}`, 'mcp-protocol-version': MODERN, 'mcp-method': method, ...name },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: envelope } }),
  });
  const text = await response.text();
  // A streamed answer (text/event-stream) ends with the response as its last data line.
  const json = response.headers.get('content-type')?.includes('text/event-stream') ? text.split('\n').filter((l) => l.startsWith('data: ')).at(-1)!.slice(6) : text;
  return { status: response.status, ...(JSON.parse(json) as Omit<WireReply, 'status'>) };
}

/** A first call that must come back `input_required`; its single input request key, method and state. */
async function firstRound(url: URL, name: string, secret = key.secret): Promise<{ key: string; method: string; requestState: string; inputRequests: Record<string, { method: string }> }> {
  const reply = await post(url, secret, 'tools/call', { name, arguments: {} });
  const result = reply.result;
  assert.equal(result?.['resultType'], 'input_required', JSON.stringify(reply));
  const inputRequests = result['inputRequests'] as Record<string, { method: string }>;
  const [first] = Object.entries(inputRequests);
  assert.ok(first, 'at least one input request');
  return { key: first[0], method: first[1].method, requestState: String(result['requestState']), inputRequests };
}

function stateClaims(requestState: string): Record<string, unknown> {
  assert.match(requestState, /^pcrs1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  return JSON.parse(Buffer.from(requestState.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

const NAME = { action: 'accept', content: { name: 'Bob' } };

test('DN-INPUT-REQUIRED: an upstream needing input answers a 2026-07-28 agent input_required with gateway-signed state; the retry completes the waiting call (2026 and 2025 upstreams, stdio and Streamable HTTP)', async () => {
  // The wire: the first call is answered input_required, the state is the gateway's and names this node.
  const first = await firstRound(nodeA.url, 'conf__test_input_required_result_elicitation');
  assert.equal(first.method, 'elicitation/create');
  const claims = stateClaims(first.requestState);
  assert.equal(claims['n'], 'node-a');
  assert.equal(claims['k'], key.id);
  assert.equal(claims['s'], 'conf__test_input_required_result_elicitation');
  assert.ok(Number(claims['e']) > Date.now());
  const retry = await post(nodeA.url, key.secret, 'tools/call', { name: 'conf__test_input_required_result_elicitation', arguments: {}, inputResponses: { [first.key]: NAME }, requestState: first.requestState });
  assert.equal(retry.result?.['resultType'], 'complete');
  assert.equal(textOf(retry.result), 'Hello, Bob!');

  // The official SDK v2 agent fulfils the round with its own handlers, through each kind of upstream.
  const { client, answers } = await inputAgent(nodeA.url);
  try {
    for (const upstream of ['conf', 'confweb']) {
      assert.equal(textOf(await client.callTool({ name: `${upstream}__test_input_required_result_elicitation`, arguments: {} })), 'Hello, Alice!', upstream);
      assert.match(textOf(await client.callTool({ name: `${upstream}__test_input_required_result_sampling`, arguments: {} })), /Paris/, upstream);
      assert.equal(textOf(await client.callTool({ name: `${upstream}__test_input_required_result_list_roots`, arguments: {} })), 'Client roots: file:///workspace', upstream);
      // input_required is not only for tools: prompts/get needs input too.
      const prompt = await client.getPrompt({ name: `${upstream}__test_input_required_result_prompt` });
      assert.deepEqual(prompt.messages[0]?.content, { type: 'text', text: 'Use this context: tests' }, upstream);
    }
    // 2025-era upstreams ask with server-to-client requests during the call: stdio (server-everything) and Streamable HTTP.
    assert.equal(textOf(await client.callTool({ name: 'legacyweb__ask', arguments: {} })), 'colour: green');
    const everything = await client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
    assert.match(textOf(everything), /decline/i);
    const sampled = await client.callTool({ name: 'everything__trigger-sampling-request', arguments: { prompt: 'capital of France?' } });
    assert.match(textOf(sampled), /Paris/);
    assert.ok(answers.elicitations.length >= 6 && answers.samplings >= 3 && answers.roots >= 2, JSON.stringify(answers));
  } finally {
    await client.close();
  }
});
