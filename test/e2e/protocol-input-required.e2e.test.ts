// Not on startTestEnv: it drives a node's UpstreamPool in this process (PoolHarness), with no control plane.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client as ModernClient } from '@modelcontextprotocol/client';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import type { DataPlaneServer } from '../../data-plane/src/http/server.ts';
import type { AppliedConfig } from '../../data-plane/src/config/applied-config.ts';
import { RpcErrorCode } from '../../data-plane/src/mcp/protocol.ts';
import { UpstreamState } from '../../proto/gen/portcullis/v1/config.ts';
import { conformanceFixtureStdioCommand, startConformanceFixtureHttp } from '../support/conformance.ts';
import {
  buildConfig,
  fetchModern,
  sessionKey,
  testKey,
  wireReply,
  type WireReply,
  listenGateway,
} from '../support/mcp-server-harness.ts';
import { REPO_ROOT, type RunningProcess } from '../support/processes.ts';
import { legacyAgent, modernAgent } from '../support/protocol-agents.ts';
import { SdkHttpFixture } from '../support/upstream-sdk-server.ts';
import { resolve } from 'node:path';
import { TSX_LOADER } from '../support/conformance.ts';
import { PoolHarness, everythingStdio, httpUpstream, stdioUpstream } from '../support/upstream-pool-harness.ts';
import { eventually } from '../support/eventually.ts';

/**
 * Server-to-client input for 2026-07-28 agents through a node (the real UpstreamPool behind the
 * real HTTP server): an upstream's need for input, whether it is a 2025-era server sending
 * `elicitation/create` / `sampling/createMessage` / `roots/list` during the call or a 2026-07-28
 * server answering `input_required`, reaches a 2026-07-28 agent (the official SDK v2 client pinned
 * to 2026-07-28) as an `input_required` result with gateway-signed request state; its retry
 * completes the waiting upstream call. Upstreams: the conformance fixture (2026-07-28) over stdio
 * and Streamable HTTP, server-everything and an SDK v1 server (2025) over stdio, an SDK server in
 * 2025 mode over Streamable HTTP.
 *
 * A 2025 upstream's call is parked on the node that asked (its state names that node); a 2026
 * upstream's own round is passed on with its state wrapped in the gateway's, and any node serves
 * the retry.
 */

const SESSION_KEYS = [sessionKey('s1')];
const key = testKey('k1', ['*']);
const otherKey = testKey('k2', ['*']);
let config: AppliedConfig;
let harness: PoolHarness;
let confHttp: { process: RunningProcess; url: string };
let legacyHttp: SdkHttpFixture;
/**
 * node-a and node-b share the pool and session keys (two nodes of one deployment); node-c lets parked calls expire
 * fast.
 */
let nodeA: Node;
let nodeB: Node;
let nodeC: Node;

interface Node {
  readonly server: DataPlaneServer;
  readonly url: URL;
}

async function startNode(nodeId: string, ttlMs?: number): Promise<Node> {
  const { gateway: server, url } = await listenGateway({
    getConfig: () => config,
    upstreams: harness.pool,
    maxBodyBytes: 256 * 1024,
    nodeId,
    ...(ttlMs === undefined ? {} : { inputExchanges: { ttlMs } }),
  });
  return { server, url };
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
    stdioUpstream('v1', process.execPath, [
      '--import',
      TSX_LOADER,
      resolve(REPO_ROOT, 'test/fixtures/input-upstream-2025/main.ts'),
    ]),
  ]);
  for (const name of ['conf', 'confweb', 'everything', 'legacyweb', 'doomed', 'v1'])
    await harness.waitForState(name, UpstreamState.UPSTREAM_STATE_READY, 30_000);
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
const FORM_ANSWERS: Readonly<Record<string, string>> = {
  name: 'Alice',
  colour: 'green',
  color: 'blue',
  context: 'tests',
};

/**
 * The SDK v2 client pinned to 2026-07-28, able to answer every kind of input: forms whose fields
 * are all in FORM_ANSWERS are accepted with those, others declined; sampling says "Paris".
 */
async function inputAgent(url: URL): Promise<{ client: ModernClient; answers: Answers }> {
  const answers: Answers = { elicitations: [], samplings: 0, roots: 0 };
  const client = await modernAgent(url, key.secret, {
    capabilities: { elicitation: { form: {} }, sampling: {}, roots: {} },
  });
  client.setRequestHandler('elicitation/create', async (request) => {
    answers.elicitations.push(String(request.params.message));
    const fields = Object.keys(
      (request.params as { requestedSchema?: { properties?: Record<string, unknown> } }).requestedSchema?.properties ??
        {},
    );
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

/** A raw 2026-07-28 request (envelope in `_meta`, standard headers), as an agent without an SDK sends it. */
async function post(
  url: URL,
  secret: string,
  method: string,
  params: Record<string, unknown>,
  capabilities: Record<string, unknown> = { elicitation: {}, sampling: {}, roots: {} },
  signal?: AbortSignal,
): Promise<WireReply> {
  const name = typeof params['name'] === 'string' ? { 'mcp-name': params['name'] } : undefined;
  return wireReply(await fetchModern(url, secret, method, params, { capabilities, headers: name, signal }));
}

/** A first call that must come back `input_required`; its single input request key, method and state. */
async function firstRound(
  url: URL,
  name: string,
  secret = key.secret,
): Promise<{ key: string; method: string; requestState: string; inputRequests: Record<string, { method: string }> }> {
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

test(`DN-INPUT-REQUIRED: an upstream needing input answers a 2026-07-28 agent input_required with gateway-signed \
state; the retry completes the waiting call (2026 and 2025 upstreams, stdio and Streamable HTTP)`, async () => {
  // The wire: the first call is answered input_required, the state is the gateway's and names this node.
  const first = await firstRound(nodeA.url, 'conf__test_input_required_result_elicitation');
  assert.equal(first.method, 'elicitation/create');
  assert.equal(first.key, 'user_name', "a 2026 upstream's own keys reach the agent");
  const claims = stateClaims(first.requestState);
  assert.equal(claims['u'], 'conf', "a 2026 upstream's round: the state names the upstream, not a node");
  assert.equal(claims['k'], key.id);
  assert.equal(claims['s'], 'conf__test_input_required_result_elicitation');
  assert.ok(Number(claims['e']) > Date.now());
  const retry = await post(nodeA.url, key.secret, 'tools/call', {
    name: 'conf__test_input_required_result_elicitation',
    arguments: {},
    inputResponses: { [first.key]: NAME },
    requestState: first.requestState,
  });
  assert.equal(retry.result?.['resultType'], 'complete');
  assert.equal(textOf(retry.result), 'Hello, Bob!');
  // A 2025 upstream's request parks the call on this node: the state names it.
  const parked = await firstRound(nodeA.url, 'v1__ask_twice');
  assert.equal(parked.method, 'elicitation/create');
  const parkedClaims = stateClaims(parked.requestState);
  assert.equal(parkedClaims['n'], 'node-a');
  assert.equal(parkedClaims['u'], undefined);
  const step2 = await post(nodeA.url, key.secret, 'tools/call', {
    name: 'v1__ask_twice',
    arguments: {},
    inputResponses: { [parked.key]: NAME },
    requestState: parked.requestState,
  });
  const [step2Key, step2Request] = Object.entries(
    step2.result?.['inputRequests'] as Record<string, { params: { message: string } }>,
  )[0]!;
  assert.equal(step2Request.params.message, 'Step 2: Bob, your colour?');
  const done = await post(nodeA.url, key.secret, 'tools/call', {
    name: 'v1__ask_twice',
    arguments: {},
    inputResponses: { [step2Key]: { action: 'accept', content: { colour: 'red' } } },
    requestState: step2.result?.['requestState'],
  });
  assert.equal(textOf(done.result), 'name=Bob colour=red');

  // The official SDK v2 agent fulfils the round with its own handlers, through each kind of upstream.
  const { client, answers } = await inputAgent(nodeA.url);
  try {
    for (const upstream of ['conf', 'confweb']) {
      assert.equal(
        textOf(await client.callTool({ name: `${upstream}__test_input_required_result_elicitation`, arguments: {} })),
        'Hello, Alice!',
        upstream,
      );
      assert.match(
        textOf(await client.callTool({ name: `${upstream}__test_input_required_result_sampling`, arguments: {} })),
        /Paris/,
        upstream,
      );
      assert.equal(
        textOf(await client.callTool({ name: `${upstream}__test_input_required_result_list_roots`, arguments: {} })),
        'Client roots: file:///workspace',
        upstream,
      );
      // input_required is not only for tools: prompts/get needs input too.
      const prompt = await client.getPrompt({ name: `${upstream}__test_input_required_result_prompt` });
      assert.deepEqual(prompt.messages[0]?.content, { type: 'text', text: 'Use this context: tests' }, upstream);
    }
    // 2025-era upstreams ask with server-to-client requests during the call: stdio (server-everything) and Streamable
    // HTTP.
    assert.equal(textOf(await client.callTool({ name: 'legacyweb__ask', arguments: {} })), 'colour: green');
    const everything = await client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
    assert.match(textOf(everything), /decline/i);
    const sampled = await client.callTool({
      name: 'everything__trigger-sampling-request',
      arguments: { prompt: 'capital of France?' },
    });
    assert.match(textOf(sampled), /Paris/);
    assert.ok(
      answers.elicitations.length >= 6 && answers.samplings >= 3 && answers.roots >= 2,
      JSON.stringify(answers),
    );
  } finally {
    await client.close();
  }
});

test(`DN-INPUT-REQUIRED-ROUNDS: several input requests in one round and several rounds in one call reach the \
2026-07-28 agent; an unanswered request is asked again`, async () => {
  for (const upstream of ['conf', 'confweb']) {
    // Three kinds of input at once: one round carries all three, each under its own key.
    const multiple = await firstRound(nodeA.url, `${upstream}__test_input_required_result_multiple_inputs`);
    assert.deepEqual(
      Object.values(multiple.inputRequests)
        .map((r) => r.method)
        .sort(),
      ['elicitation/create', 'roots/list', 'sampling/createMessage'],
      upstream,
    );
    const responses: Record<string, unknown> = {};
    for (const [inputKey, request] of Object.entries(multiple.inputRequests)) {
      if (request.method === 'elicitation/create') responses[inputKey] = NAME;
      else if (request.method === 'roots/list')
        responses[inputKey] = { roots: [{ uri: 'file:///a' }, { uri: 'file:///b' }] };
      else responses[inputKey] = { role: 'assistant', content: { type: 'text', text: 'Hi' }, model: 'm' };
    }
    // Answering only some: the upstream asks again, under a new state.
    const [elicitKey] = Object.entries(multiple.inputRequests).find(([, r]) => r.method === 'elicitation/create')!;
    const partial = await post(nodeA.url, key.secret, 'tools/call', {
      name: `${upstream}__test_input_required_result_multiple_inputs`,
      arguments: {},
      inputResponses: { [elicitKey]: NAME },
      requestState: multiple.requestState,
    });
    assert.equal(partial.result?.['resultType'], 'input_required', JSON.stringify(partial));
    assert.notEqual(partial.result['requestState'], multiple.requestState);
    const done = await post(nodeA.url, key.secret, 'tools/call', {
      name: `${upstream}__test_input_required_result_multiple_inputs`,
      arguments: {},
      inputResponses: responses,
      requestState: partial.result['requestState'],
    });
    assert.equal(textOf(done.result), 'All inputs received: name="Bob", roots=2', upstream);

    // Two rounds with a state that changes between them, fulfilled by the SDK agent.
    const { client, answers } = await inputAgent(nodeA.url);
    try {
      assert.equal(
        textOf(await client.callTool({ name: `${upstream}__test_input_required_result_multi_round`, arguments: {} })),
        'Multi-round complete: favorite color blue',
        upstream,
      );
      assert.deepEqual(answers.elicitations, ['Step 1: What is your name?', 'Step 2: What is your favorite color?']);
      // A form the agent declines: the decline is an answer too, and it travels with the round's state.
      assert.equal(
        textOf(await client.callTool({ name: `${upstream}__test_input_required_result_request_state`, arguments: {} })),
        'state-ok: confirmation decline, ok=undefined',
      );
    } finally {
      await client.close();
    }
  }

  // A 2025 upstream with two requests in flight at once: one round carries both; the one left unanswered is asked
  // again.
  const both = await firstRound(nodeA.url, 'v1__ask_both');
  assert.equal(Object.keys(both.inputRequests).length, 2, JSON.stringify(both.inputRequests));
  const keyAsking = (question: string) =>
    Object.entries(both.inputRequests as Record<string, { params?: { message?: string } }>).find(
      ([, r]) => r.params?.message === question,
    )![0];
  const nameKey = keyAsking('Your name?');
  const colourKey = keyAsking('Your colour?');
  // An answer of the wrong shape and keys that name nothing are ignored: only the name is taken.
  const again = await post(nodeA.url, key.secret, 'tools/call', {
    name: 'v1__ask_both',
    arguments: {},
    inputResponses: { [nameKey]: NAME, [colourKey]: 12345, nonsense: { action: 'accept' } },
    requestState: both.requestState,
  });
  assert.deepEqual(Object.keys(again.result?.['inputRequests'] as object), [colourKey]);
  const finished = await post(nodeA.url, key.secret, 'tools/call', {
    name: 'v1__ask_both',
    arguments: {},
    inputResponses: { [colourKey]: { action: 'accept', content: { colour: 'teal' } } },
    requestState: again.result?.['requestState'],
  });
  assert.equal(textOf(finished.result), 'name=Bob colour=teal');

  // Sampling then roots, each its own round, fulfilled by the SDK agent.
  const { client, answers } = await inputAgent(nodeA.url);
  try {
    assert.equal(
      textOf(await client.callTool({ name: 'v1__sample_and_roots', arguments: {} })),
      'sampled=Paris roots=file:///workspace',
    );
    assert.equal(textOf(await client.callTool({ name: 'v1__ask_twice', arguments: {} })), 'name=Alice colour=green');
    assert.deepEqual(answers.elicitations, ['Step 1: your name?', 'Step 2: Alice, your colour?']);
  } finally {
    await client.close();
  }
});

test(`DN-INPUT-STATE-REFUSED: request state that is tampered with, not the gateway's, issued to another key or for \
another request is refused -32602`, async () => {
  const tool = 'conf__test_input_required_result_tampered_state';
  const first = await firstRound(nodeA.url, tool);
  const answer = { [first.key]: NAME };
  const [prefix, payload, mac] = first.requestState.split('.') as [string, string, string];
  const forged = Buffer.from(JSON.stringify({ ...stateClaims(first.requestState), k: otherKey.id })).toString(
    'base64url',
  );
  const refusals: [string, string, string][] = [
    ['suffix', `${first.requestState}-TAMPERED`, key.secret],
    ['payload', `${prefix}.${forged}.${mac}`, key.secret],
    ['signature', `${prefix}.${payload}.${Buffer.alloc(32).toString('base64url')}`, key.secret],
    ['foreign', 'upstream-opaque-state', key.secret],
    ['other key', first.requestState, otherKey.secret],
  ];
  for (const [what, requestState, secret] of refusals) {
    const reply = await post(nodeA.url, secret, 'tools/call', {
      name: tool,
      arguments: {},
      inputResponses: answer,
      requestState,
    });
    assert.equal(reply.error?.code, RpcErrorCode.InvalidParams, `${what}: ${JSON.stringify(reply)}`);
    assert.match(reply.error.message, /Invalid requestState/);
  }
  const otherTool = await post(nodeA.url, key.secret, 'tools/call', {
    name: 'conf__test_input_required_result_elicitation',
    arguments: {},
    inputResponses: answer,
    requestState: first.requestState,
  });
  assert.equal(otherTool.error?.code, RpcErrorCode.InvalidParams, JSON.stringify(otherTool));
  assert.match(otherTool.error.message, /belongs to tools\/call "conf__test_input_required_result_tampered_state"/);
  // None of that spent the state: the rightful retry still completes.
  const retry = await post(nodeA.url, key.secret, 'tools/call', {
    name: tool,
    arguments: {},
    inputResponses: answer,
    requestState: first.requestState,
  });
  assert.equal(textOf(retry.result), 'state verified');
});

test(`DN-INPUT-STATE-ENDED: a retry after the parked call ended is refused -32044 saying why: already answered, or \
expired (the waiting call is abandoned)`, async () => {
  const tool = 'v1__ask_twice';
  const first = await firstRound(nodeA.url, tool);
  const second = await post(nodeA.url, key.secret, 'tools/call', {
    name: tool,
    arguments: {},
    inputResponses: { [first.key]: NAME },
    requestState: first.requestState,
  });
  assert.equal(second.result?.['resultType'], 'input_required');
  const stale = await post(nodeA.url, key.secret, 'tools/call', {
    name: tool,
    arguments: {},
    inputResponses: { [first.key]: NAME },
    requestState: first.requestState,
  });
  assert.equal(stale.error?.code, RpcErrorCode.InputNotAwaited, JSON.stringify(stale));
  assert.match(stale.error.message, /already answered/);
  const [secondKey] = Object.keys(second.result['inputRequests'] as object);
  const answered = await post(nodeA.url, key.secret, 'tools/call', {
    name: tool,
    arguments: {},
    inputResponses: { [secondKey!]: { action: 'accept', content: { colour: 'red' } } },
    requestState: second.result['requestState'],
  });
  assert.equal(textOf(answered.result), 'name=Bob colour=red');
  const replay = await post(nodeA.url, key.secret, 'tools/call', {
    name: tool,
    arguments: {},
    inputResponses: { [secondKey!]: NAME },
    requestState: second.result['requestState'],
  });
  assert.equal(replay.error?.code, RpcErrorCode.InputNotAwaited, JSON.stringify(replay));
  assert.match(replay.error.message, /already completed/);

  // A 2026 upstream's round expires as well.
  const upstreamRound = await firstRound(nodeC.url, 'conf__test_input_required_result_elicitation');

  // node-c abandons a parked call 300 ms after asking; the 2025 upstream's request is refused then.
  const parked = await firstRound(nodeC.url, 'legacyweb__ask');
  // A fixed time on purpose: the answer is to come after node-c gave up on the call (300 ms).
  await new Promise((r) => setTimeout(r, 450));
  const late = await post(nodeC.url, key.secret, 'tools/call', {
    name: 'legacyweb__ask',
    arguments: {},
    inputResponses: { [parked.key]: { action: 'accept', content: { colour: 'red' } } },
    requestState: parked.requestState,
  });
  assert.equal(late.error?.code, RpcErrorCode.InputNotAwaited, JSON.stringify(late));
  assert.match(late.error.message, /expired/);
  assert.equal(late.error.data?.['reason'], 'expired');
  const lateRound = await post(nodeC.url, key.secret, 'tools/call', {
    name: 'conf__test_input_required_result_elicitation',
    arguments: {},
    inputResponses: { [upstreamRound.key]: NAME },
    requestState: upstreamRound.requestState,
  });
  assert.equal(lateRound.error?.code, RpcErrorCode.InputNotAwaited, JSON.stringify(lateRound));
});

test(`DN-INPUT-UPSTREAM-GONE: when the upstream dies while its call waits for the agent's input, the retry gets an \
isError result naming the upstream`, async () => {
  const first = await firstRound(nodeA.url, 'doomed__trigger-elicitation-request');
  const pid = harness.connection('doomed').pid;
  assert.ok(pid !== undefined);
  process.kill(pid, 'SIGKILL');
  await eventually('doomed is down', () => harness.state('doomed') !== UpstreamState.UPSTREAM_STATE_READY);
  const retry = await post(nodeA.url, key.secret, 'tools/call', {
    name: 'doomed__trigger-elicitation-request',
    arguments: {},
    inputResponses: { [first.key]: { action: 'decline' } },
    requestState: first.requestState,
  });
  // Issue 13: the failure of a tools/call reaches the model as an isError result naming the upstream.
  assert.equal(retry.result?.['isError'], true, JSON.stringify(retry));
  assert.match(JSON.stringify(retry.result?.['content']), /Upstream \\"doomed\\"/);
  assert.equal(
    (retry.result?.['_meta'] as Record<string, Record<string, unknown>> | undefined)?.['dev.portcullis/error']?.[
      'upstream'
    ],
    'doomed',
  );
});

test(`DN-INPUT-OTHER-NODE-UNREACHABLE: a retry that lands on a node without a control-plane connection, so that it \
cannot be relayed, is refused -32045 naming the issuing node; on that node it completes (a 2026 upstream's round \
completes on any node)`, async () => {
  const upstreamRound = await firstRound(nodeA.url, 'confweb__test_input_required_result_elicitation');
  const anywhere = await post(nodeB.url, key.secret, 'tools/call', {
    name: 'confweb__test_input_required_result_elicitation',
    arguments: {},
    inputResponses: { [upstreamRound.key]: NAME },
    requestState: upstreamRound.requestState,
  });
  assert.equal(textOf(anywhere.result), 'Hello, Bob!');

  const tool = 'legacyweb__ask';
  const first = await firstRound(nodeA.url, tool);
  const colour = { action: 'accept', content: { colour: 'red' } };
  const elsewhere = await post(nodeB.url, key.secret, 'tools/call', {
    name: tool,
    arguments: {},
    inputResponses: { [first.key]: colour },
    requestState: first.requestState,
  });
  assert.equal(elsewhere.error?.code, RpcErrorCode.InputOnOtherNode, JSON.stringify(elsewhere));
  assert.equal(elsewhere.error.data?.['node'], 'node-a');
  assert.match(elsewhere.error.message, /"node-a".*not connected to the control plane/);
  const home = await post(nodeA.url, key.secret, 'tools/call', {
    name: tool,
    arguments: {},
    inputResponses: { [first.key]: colour },
    requestState: first.requestState,
  });
  assert.equal(textOf(home.result), 'colour: red');
});

test(`DN-INPUT-LEGACY-AGENT: a 2026-07-28 upstream's input_required reaches a 2025 agent as server-to-client requests \
on the call stream (stdio and Streamable HTTP upstreams)`, async () => {
  const asked: string[] = [];
  const { client } = await legacyAgent(nodeA.url, key.secret, {
    capabilities: { elicitation: {}, sampling: {}, roots: {} },
  });
  const { ElicitRequestSchema, CreateMessageRequestSchema, ListRootsRequestSchema } = await import(
    '@modelcontextprotocol/sdk/types.js'
  );
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    asked.push(request.params.message);
    return { action: 'accept', content: { name: 'Carol' } };
  });
  client.setRequestHandler(CreateMessageRequestSchema, async () => ({
    role: 'assistant',
    content: { type: 'text', text: 'Paris' },
    model: 'm',
  }));
  client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file:///legacy' }] }));
  try {
    for (const upstream of ['conf', 'confweb']) {
      const result = await client.callTool(
        { name: `${upstream}__test_input_required_result_elicitation`, arguments: {} },
        CallToolResultSchema,
      );
      assert.equal(textOf(result), 'Hello, Carol!', upstream);
      const roots = await client.callTool(
        { name: `${upstream}__test_input_required_result_list_roots`, arguments: {} },
        CallToolResultSchema,
      );
      assert.equal(textOf(roots), 'Client roots: file:///legacy', upstream);
    }
    assert.deepEqual(asked, ['What is your name?', 'What is your name?']);
  } finally {
    await client.close();
  }
});

test(`DN-INPUT-CAPABILITIES: a 2026-07-28 upstream sees the agent's client capabilities (not the gateway's), so it \
asks only for input the agent can give; its -32021 refusal keeps HTTP 400`, async () => {
  for (const upstream of ['conf', 'confweb']) {
    const samplingOnly = await post(
      nodeA.url,
      key.secret,
      'tools/call',
      { name: `${upstream}__test_input_required_result_capabilities`, arguments: {} },
      { sampling: {} },
    );
    assert.equal(samplingOnly.result?.['resultType'], 'input_required', JSON.stringify(samplingOnly));
    assert.deepEqual(
      Object.values(samplingOnly.result['inputRequests'] as Record<string, { method: string }>).map((r) => r.method),
      ['sampling/createMessage'],
      upstream,
    );
    const none = await post(
      nodeA.url,
      key.secret,
      'tools/call',
      { name: `${upstream}__test_missing_capability`, arguments: {} },
      {},
    );
    assert.equal(none.error?.code, RpcErrorCode.MissingRequiredClientCapability, JSON.stringify(none));
    assert.equal(none.status, 400);
  }
});

test(`DN-INPUT-PROGRESS: what the upstream sends while a parked call runs goes to the agent request waiting at that \
moment, progress under that request's token`, async () => {
  const first = await post(nodeA.url, key.secret, 'tools/call', {
    name: 'v1__ask_twice',
    arguments: {},
    _meta: { progressToken: 'first' },
  });
  const [firstKey] = Object.keys(first.result?.['inputRequests'] as object);
  const second = await post(nodeA.url, key.secret, 'tools/call', {
    name: 'v1__ask_twice',
    arguments: {},
    inputResponses: { [firstKey!]: NAME },
    requestState: first.result?.['requestState'],
    _meta: { progressToken: 'second' },
  });
  assert.equal(second.result?.['resultType'], 'input_required', JSON.stringify(second));
  assert.deepEqual(second.notifications, [
    {
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 'second', progress: 1, total: 2, message: 'got Bob' },
    },
  ]);
  // Finish the call: a 2025 stdio upstream cannot tell which call a request belongs to while two are in flight.
  const [secondKey] = Object.keys(second.result['inputRequests'] as object);
  const done = await post(nodeA.url, key.secret, 'tools/call', {
    name: 'v1__ask_twice',
    arguments: {},
    inputResponses: { [secondKey!]: { action: 'accept', content: { colour: 'red' } } },
    requestState: second.result['requestState'],
  });
  assert.equal(textOf(done.result), 'name=Bob colour=red');
});

test(`DN-INPUT-CANCEL: the agent going away while its retry waits cancels the parked upstream call; its state is then \
refused saying so`, async () => {
  const started = async () =>
    Number(textOf((await post(nodeA.url, key.secret, 'tools/call', { name: 'v1__started', arguments: {} })).result));
  const startedBefore = await started();
  const first = await firstRound(nodeA.url, 'v1__ask_then_work');
  const abort = new AbortController();
  const waiting = post(
    nodeA.url,
    key.secret,
    'tools/call',
    {
      name: 'v1__ask_then_work',
      arguments: {},
      inputResponses: { [first.key]: NAME },
      requestState: first.requestState,
    },
    undefined,
    abort.signal,
  );
  await eventually('the upstream got the answer and works', async () => (await started()) > startedBefore);
  abort.abort();
  await assert.rejects(waiting);
  await eventually(
    'the upstream saw the cancellation',
    async () =>
      textOf((await post(nodeA.url, key.secret, 'tools/call', { name: 'v1__cancellations', arguments: {} })).result) ===
      '1',
  );
  const late = await post(nodeA.url, key.secret, 'tools/call', {
    name: 'v1__ask_then_work',
    arguments: {},
    inputResponses: { [first.key]: NAME },
    requestState: first.requestState,
  });
  assert.equal(late.error?.code, RpcErrorCode.InputNotAwaited, JSON.stringify(late));
  assert.match(late.error.message, /went away/);
});
