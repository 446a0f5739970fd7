// The replica and restart describes start and restart control planes and nodes by hand; the first uses startTestEnv.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { firstText } from '../support/agents.ts';
import { TSX_LOADER } from '../support/conformance.ts';
import { createTestSchema, type TestSchema } from '../support/database.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { ControlPlaneProcess, DataPlaneProcess, accepts, postMcp } from '../support/gateway.ts';
import { CREATE_KEY, graphqlOk } from '../support/graphql.ts';
import { REPO_ROOT } from '../support/processes.ts';
import { startTwoReplicas, type TwoReplicas } from '../support/replicas.ts';
import { modernAgent, sseAgent } from '../support/protocol-agents.ts';
import { RpcErrorCode } from '../../data-plane/src/mcp/protocol.ts';
import { eventually } from '../support/eventually.ts';
import { fetchModern, wireReply, type WireReply } from '../support/mcp-server-harness.ts';

/**
 * Relays between data-plane nodes through the control plane (ConfigService.Connect, RelayEnvelope):
 * a 2025-era agent's messages that must reach the node holding what they refer to. Real processes:
 * the control plane on PostgreSQL (a schema of its own), two (then three) data-plane nodes,
 * server-everything and an SDK v1 server over stdio, the official SDK v1 client as the agent, whose
 * fetch sends some POSTs to the other node, as a load balancer may.
 */

const PING = { jsonrpc: '2.0', id: 7, method: 'ping' };

/**
 * The agent's fetch: JSON-RPC responses and notifications/cancelled go to `other`, everything else where the SDK sends
 * it.
 */
function splitFetch(other: string, moved: string[]): typeof fetch {
  return async (input, init) => {
    const body = typeof init?.body === 'string' ? init.body : undefined;
    if (init?.method === 'POST' && body !== undefined) {
      const message = JSON.parse(body) as { method?: unknown; id?: unknown };
      const isResponse = message.method === undefined && message.id !== undefined;
      if (isResponse || message.method === 'notifications/cancelled') {
        moved.push(isResponse ? 'response' : String(message.method));
        return fetch(other, init);
      }
    }
    return fetch(input, init);
  };
}

/**
 * The agent's fetch: retries after input_required (a body with params.requestState) go to `other`, as a load balancer
 * may send them.
 */
function retriesTo(other: string, moved: string[]): typeof fetch {
  return async (input, init) => {
    const body =
      typeof init?.body === 'string'
        ? (JSON.parse(init.body) as { method?: string; params?: { requestState?: unknown } })
        : undefined;
    if (init?.method === 'POST' && body?.params?.requestState !== undefined) {
      moved.push(String(body.method));
      return fetch(other, init);
    }
    return fetch(input, init);
  };
}

/** A 2026-07-28 agent on `from` that answers form elicitations, its retries sent to `to` (see retriesTo). */
function elicitingAgent(from: string, to: string, secret: string, moved: string[]) {
  return modernAgent(new URL(from), secret, { capabilities: { elicitation: { form: {} } } }, retriesTo(to, moved));
}

/**
 * A legacy HTTP+SSE agent's POST fetch: every POST /messages goes to `other` (same path and query), as a load balancer
 * without sticky sessions may send it.
 */
function messagesTo(other: string, moved: string[]): typeof fetch {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (init?.method === 'POST' && url.pathname === '/messages') {
      moved.push(url.pathname);
      return fetch(new URL(`${url.pathname}${url.search}`, other), init);
    }
    return fetch(input, init);
  };
}

/**
 * A raw 2026-07-28 tools/call (envelope in `_meta`, standard headers); a streamed answer is split into its
 * notifications and the response.
 */
async function callModern(
  url: string,
  secret: string,
  params: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<WireReply> {
  const options = { capabilities: { elicitation: {} }, headers: { 'mcp-name': String(params['name']) }, signal };
  return wireReply(await fetchModern(url, secret, 'tools/call', params, options));
}

/** The first input round of a raw call: the key of its one input request and its request state. */
async function firstRound(url: string, secret: string, name: string): Promise<{ key: string; requestState: string }> {
  const reply = await callModern(url, secret, { name, arguments: {} });
  assert.equal(reply.result?.['resultType'], 'input_required', JSON.stringify(reply));
  const [key] = Object.keys(reply.result['inputRequests'] as object);
  return { key: key!, requestState: String(reply.result['requestState']) };
}

async function legacyAgent(
  url: string,
  secret: string,
  options: { fetch?: typeof fetch; sessionId?: string } = {},
): Promise<{ client: ClientV1; transport: TransportV1 }> {
  const client = new ClientV1(
    { name: 'relay-test-agent', version: '1.0.0' },
    { capabilities: { elicitation: { form: {} } } },
  );
  const transport = new TransportV1(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${secret}` } },
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.sessionId ? { sessionId: options.sessionId } : {}),
  });
  await client.connect(transport);
  return { client, transport };
}

describe('relays between data-plane nodes through the control plane', () => {
  let env: TestEnv;
  let controlPlane: ControlPlaneProcess;
  let nodeA: DataPlaneProcess;
  let nodeB: DataPlaneProcess;
  let nodeC: DataPlaneProcess | undefined;
  let key: { id: string; secret: string };

  before(async () => {
    env = await startTestEnv({
      nodes: ['node-a', 'node-b'],
      upstreams: [
        everythingUpstream('ev'),
        {
          name: 'v1',
          transport: 'STDIO',
          command: process.execPath,
          args: ['--import', TSX_LOADER, resolve(REPO_ROOT, 'test/fixtures/input-upstream-2025/main.ts')],
        },
      ],
      keys: [{ name: 'agent', allowedTools: ['ev__*', 'v1__*'] }],
    });
    controlPlane = env.controlPlane!;
    [nodeA, nodeB] = [env.node('node-a'), env.node('node-b')];
    key = env.key;
  });

  after(async () => {
    await nodeC?.stop();
    await env?.dispose();
  });

  async function toolsReady(client: ClientV1, names: string[]): Promise<void> {
    await eventually(
      `tools ${names.join(', ')} listed`,
      async () => {
        const listed = (await client.listTools()).tools.map((t) => t.name);
        return names.every((name) => listed.includes(name));
      },
      30_000,
    );
  }

  test(`DN-RELAY-SERVER-REPLY: an elicitation answered by a POST that lands on the other node completes the \
call`, async () => {
    const moved: string[] = [];
    const { client } = await legacyAgent(nodeA.mcpUrl, key.secret, { fetch: splitFetch(nodeB.mcpUrl, moved) });
    try {
      await toolsReady(client, ['ev__trigger-elicitation-request', 'v1__ask_twice']);
      let asked = 0;
      client.setRequestHandler(ElicitRequestSchema, async (request) => {
        asked += 1;
        const field =
          'requestedSchema' in request.params &&
          Object.keys(request.params.requestedSchema.properties).includes('colour')
            ? 'colour'
            : 'name';
        return { action: 'accept', content: { [field]: field === 'colour' ? 'teal' : `Ada ${asked}` } };
      });
      const everything = await client.callTool({ name: 'ev__trigger-elicitation-request', arguments: {} });
      assert.match(JSON.stringify(everything.content), /Ada 1/);
      const twice = await client.callTool({ name: 'v1__ask_twice', arguments: {} });
      assert.equal(firstText(twice), 'name=Ada 2 colour=teal');
      assert.deepEqual(moved, ['response', 'response', 'response'], 'every answer was posted to node B');
    } finally {
      await client.close();
    }
  });

  test('DN-RELAY-CANCEL: a cancellation sent to the other node aborts the upstream call', async () => {
    const moved: string[] = [];
    const { client } = await legacyAgent(nodeA.mcpUrl, key.secret, { fetch: splitFetch(nodeB.mcpUrl, moved) });
    try {
      await toolsReady(client, ['v1__ask_then_work', 'v1__cancellations', 'v1__started']);
      const count = async (name: string) => Number(firstText(await client.callTool({ name, arguments: {} })));
      const before = await count('v1__cancellations');
      const startedBefore = await count('v1__started');
      client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { name: 'worker' } }));
      const controller = new AbortController();
      const call = client.callTool({ name: 'v1__ask_then_work', arguments: {} }, undefined, {
        signal: controller.signal,
      });
      await eventually(
        'the upstream got the answer and works',
        async () => (await count('v1__started')) > startedBefore,
      );
      controller.abort('enough');
      await assert.rejects(call);
      // The upstream works for 10 s unless cancelled; a dropped resumable stream alone would not cancel it within 30 s.
      const waitedSince = Date.now();
      await eventually(
        'the upstream call was cancelled',
        async () => (await count('v1__cancellations')) === before + 1,
        4_000,
      );
      const waited = Date.now() - waitedSince;
      assert.ok(waited < 4_000);
      assert.ok(moved.includes('notifications/cancelled'), 'the cancel was posted to node B');
    } finally {
      await client.close();
    }
  });

  test(`DN-INPUT-OTHER-NODE: a 2026-07-28 agent's retries after a 2025 upstream's elicitation land on the other node, \
are relayed to the node holding the call and complete it, progress included`, async () => {
    const moved: string[] = [];
    const client = await elicitingAgent(nodeA.mcpUrl, nodeB.mcpUrl, key.secret, moved);
    try {
      const asked: string[] = [];
      client.setRequestHandler('elicitation/create', async (request) => {
        asked.push(String(request.params.message));
        const fields = Object.keys(
          (request.params as { requestedSchema?: { properties?: object } }).requestedSchema?.properties ?? {},
        );
        return { action: 'accept', content: { [fields[0]!]: fields[0] === 'colour' ? 'teal' : 'Ada' } };
      });
      await eventually(
        'v1 tools listed on node A',
        async () => (await client.listTools()).tools.some((t) => t.name === 'v1__ask_twice'),
        30_000,
      );
      const progress: string[] = [];
      const result = await client.callTool(
        { name: 'v1__ask_twice', arguments: {} },
        { onprogress: (p) => void progress.push(String(p.message)) },
      );
      assert.equal(firstText(result as never), 'name=Ada colour=teal');
      assert.deepEqual(asked, ['Step 1: your name?', 'Step 2: Ada, your colour?']);
      assert.deepEqual(moved, ['tools/call', 'tools/call'], 'both retries were sent to node B');
      // The SDK reports its own rounds as progress too ("Fulfilling input required …"); the upstream's comes from node
      // A.
      assert.deepEqual(
        progress.filter((m) => !m.startsWith('Fulfilling')),
        ['got Ada'],
        'the progress node A sent while serving the relayed retry reached the agent on node B',
      );
    } finally {
      await client.close();
    }
  });

  test(`DN-INPUT-OTHER-NODE: node A checks a relayed retry as its own (one-shot, key binding, signature); an agent \
leaving node B cancels the call on node A`, async () => {
    const other = await graphqlOk<{ createVirtualKey: { secret: string } }>(
      controlPlane.graphqlUrl,
      controlPlane.adminToken,
      CREATE_KEY,
      { input: { name: 'other-agent', allowedTools: ['v1__*'] } },
    );
    await eventually('the other key reached node B', () => accepts(nodeB.mcpUrl, other.createVirtualKey.secret), 5_000);
    const first = await firstRound(nodeA.mcpUrl, key.secret, 'v1__ask_twice');
    const answer = { [first.key]: { action: 'accept', content: { name: 'Bo' } } };
    const foreign = await callModern(nodeB.mcpUrl, other.createVirtualKey.secret, {
      name: 'v1__ask_twice',
      arguments: {},
      inputResponses: answer,
      requestState: first.requestState,
    });
    assert.equal(foreign.error?.code, RpcErrorCode.InvalidParams, JSON.stringify(foreign));
    const tampered = await callModern(nodeB.mcpUrl, key.secret, {
      name: 'v1__ask_twice',
      arguments: {},
      inputResponses: answer,
      requestState: `${first.requestState.slice(0, -4)}AAAA`,
    });
    assert.equal(tampered.error?.code, RpcErrorCode.InvalidParams, JSON.stringify(tampered));
    const second = await callModern(nodeB.mcpUrl, key.secret, {
      name: 'v1__ask_twice',
      arguments: {},
      inputResponses: answer,
      requestState: first.requestState,
    });
    assert.equal(second.result?.['resultType'], 'input_required', JSON.stringify(second));
    const replayed = await callModern(nodeB.mcpUrl, key.secret, {
      name: 'v1__ask_twice',
      arguments: {},
      inputResponses: answer,
      requestState: first.requestState,
    });
    assert.equal(replayed.error?.code, RpcErrorCode.InputNotAwaited, JSON.stringify(replayed));
    assert.equal(replayed.error.data?.['reason'], 'answered');
    const [secondKey] = Object.keys(second.result['inputRequests'] as object);
    const done = await callModern(nodeB.mcpUrl, key.secret, {
      name: 'v1__ask_twice',
      arguments: {},
      inputResponses: { [secondKey!]: { action: 'accept', content: { colour: 'red' } } },
      requestState: second.result['requestState'],
    });
    assert.equal(
      (done.result?.['content'] as { text: string }[] | undefined)?.[0]?.text,
      'name=Bo colour=red',
      JSON.stringify(done),
    );

    /** A counter of node A's upstream, which holds the call. */
    const countOnA = async (name: string) =>
      Number(
        (
          (await callModern(nodeA.mcpUrl, key.secret, { name, arguments: {} })).result?.['content'] as
            | { text: string }[]
            | undefined
        )?.[0]?.text,
      );
    const cancelled = () => countOnA('v1__cancellations');
    const before = await cancelled();
    const startedBefore = await countOnA('v1__started');
    const work = await firstRound(nodeA.mcpUrl, key.secret, 'v1__ask_then_work');
    const abort = new AbortController();
    const waiting = callModern(
      nodeB.mcpUrl,
      key.secret,
      {
        name: 'v1__ask_then_work',
        arguments: {},
        inputResponses: { [work.key]: { action: 'accept', content: { name: 'W' } } },
        requestState: work.requestState,
      },
      abort.signal,
    );
    await eventually('node A relayed the answer and the upstream works', async () => {
      return (await countOnA('v1__started')) > startedBefore;
    });
    abort.abort();
    await assert.rejects(waiting);
    // The upstream works for 10 s unless cancelled.
    await eventually('the call on node A was cancelled', async () => (await cancelled()) === before + 1, 4_000);
  });

  test(`DN-TRANSPORT-LEGACY-SSE-OTHER-NODE: a legacy HTTP+SSE agent whose every POST /messages lands on node B works \
against its stream on node A (tools, progress, elicitation answers); another key cannot use the session`, async () => {
    const moved: string[] = [];
    const { client, transport } = await sseAgent(
      new URL(nodeA.mcpUrl),
      key.secret,
      { capabilities: { elicitation: {} } },
      messagesTo(nodeB.mcpUrl, moved),
    );
    try {
      client.setRequestHandler(ElicitRequestSchema, async (request) => {
        const field =
          'requestedSchema' in request.params &&
          Object.keys(request.params.requestedSchema.properties).includes('colour')
            ? 'colour'
            : 'name';
        return { action: 'accept', content: { [field]: field === 'colour' ? 'amber' : 'Sse' } };
      });
      await toolsReady(client, ['v1__ask_twice', 'ev__echo']);
      assert.equal(firstText(await client.callTool({ name: 'ev__echo', arguments: { message: 'hi' } })), 'Echo: hi');
      const progress: number[] = [];
      const twice = await client.callTool({ name: 'v1__ask_twice', arguments: {} }, undefined, {
        onprogress: (p) => void progress.push(p.progress),
      });
      assert.equal(firstText(twice), 'name=Sse colour=amber');
      assert.deepEqual(progress, [1]);
      assert.ok(moved.length >= 5, `the initialize, lists, calls and answers were posted to node B (${moved.length})`);

      const endpoint = (transport as unknown as { _endpoint: URL })._endpoint;
      const other = await graphqlOk<{ createVirtualKey: { secret: string } }>(
        controlPlane.graphqlUrl,
        controlPlane.adminToken,
        CREATE_KEY,
        { input: { name: 'sse-intruder', allowedTools: ['ev__*'] } },
      );
      await eventually(
        'the intruder key reached node B',
        () => accepts(nodeB.mcpUrl, other.createVirtualKey.secret),
        5_000,
      );
      const intruded = await fetch(new URL(`/messages${endpoint.search}`, nodeB.mcpUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${other.createVirtualKey.secret}` },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 99,
          method: 'tools/call',
          params: { name: 'ev__echo', arguments: { message: 'intruder' } },
        }),
      });
      assert.equal(intruded.status, 404, 'a session is bound to its key on every node');
    } finally {
      await client.close();
    }
  });

  test(`DN-INPUT-OTHER-NODE-UNREACHABLE DN-TRANSPORT-LEGACY-SSE-OTHER-NODE-UNREACHABLE: a retry, and a legacy POST \
/messages, whose node has gone are answered (-32045 naming that node; 404) once it stays silent`, async () => {
    const nodeD = await DataPlaneProcess.start(controlPlane, 'node-d');
    let stopped = false;
    try {
      await eventually('the key reached node D', () => accepts(nodeD.mcpUrl, key.secret), 5_000);
      // An upstream still connecting answers a result too, with isError (UPSTREAM_UNAVAILABLE): wait for a real one.
      const v1Answers = async () => {
        const { result } = await callModern(nodeD.mcpUrl, key.secret, { name: 'v1__cancellations', arguments: {} });
        return result !== undefined && result['isError'] !== true;
      };
      await eventually('v1 ready on node D', v1Answers, 30_000);
      const first = await firstRound(nodeD.mcpUrl, key.secret, 'v1__ask_twice');
      const sse = await sseAgent(new URL(nodeD.mcpUrl), key.secret);
      const endpoint = (sse.transport as unknown as { _endpoint: URL })._endpoint;
      await nodeD.stop();
      stopped = true;
      const postStarted = Date.now();
      const post = await fetch(new URL(`/messages${endpoint.search}`, nodeB.mcpUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key.secret}` },
        body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'ping' }),
      });
      assert.equal(post.status, 404);
      assert.match(
        ((await post.json()) as { error: { message: string } }).error.message,
        /could not be reached \(no word from it for 5000 ms/,
      );
      assert.ok(Date.now() - postStarted < 10_000);
      await sse.client.close().catch(() => undefined);
      const started = Date.now();
      const retry = await callModern(nodeB.mcpUrl, key.secret, {
        name: 'v1__ask_twice',
        arguments: {},
        inputResponses: { [first.key]: { action: 'decline' } },
        requestState: first.requestState,
      });
      assert.equal(retry.error?.code, RpcErrorCode.InputOnOtherNode, JSON.stringify(retry));
      assert.equal(retry.error.data?.['node'], 'node-d');
      assert.match(retry.error.message, /"node-d"/);
      assert.ok(Date.now() - started < 10_000);
    } finally {
      if (!stopped) await nodeD.stop();
    }
  });

  test(`DN-RELAY-SESSION-ENDED: a session DELETEd on node A gets 404 on node B within a second, and on a node started \
afterwards`, async () => {
    const { client, transport } = await legacyAgent(nodeA.mcpUrl, key.secret);
    const sessionId = transport.sessionId;
    assert.ok(sessionId);
    const headers = { authorization: `Bearer ${key.secret}`, 'mcp-session-id': sessionId };
    assert.equal(
      (await postMcp(nodeB.mcpUrl, PING, headers)).status,
      200,
      'node B serves the session before the DELETE',
    );
    await transport.terminateSession();
    await client.close();
    assert.equal((await postMcp(nodeA.mcpUrl, PING, headers)).status, 404);
    const tookSince = Date.now();
    await eventually(
      'node B refuses the ended session',
      async () => (await postMcp(nodeB.mcpUrl, PING, headers)).status === 404,
      1_000,
    );
    const took = Date.now() - tookSince;
    assert.ok(took <= 1_000);

    nodeC = await DataPlaneProcess.start(controlPlane, 'node-c');
    await eventually('the key reached node C', () => accepts(nodeC!.mcpUrl, key.secret), 5_000);
    const refused = await postMcp(nodeC.mcpUrl, PING, headers);
    assert.equal(refused.status, 404, 'a node that connected after the DELETE refuses the session id');
    const other = await legacyAgent(nodeA.mcpUrl, key.secret);
    try {
      const fresh = { authorization: `Bearer ${key.secret}`, 'mcp-session-id': other.transport.sessionId! };
      assert.equal((await postMcp(nodeC.mcpUrl, PING, fresh)).status, 200, 'other sessions are served on node C');
    } finally {
      await other.client.close();
    }
  });
});

describe('relays across control-plane replicas (Postgres LISTEN/NOTIFY)', () => {
  let replicas: TwoReplicas;
  let nodeA: DataPlaneProcess;
  let nodeB: DataPlaneProcess;
  let key: { id: string; secret: string };

  before(async () => {
    replicas = await startTwoReplicas();
    ({ nodeA, nodeB, key } = replicas);
  });

  after(async () => {
    await replicas?.dispose();
  });

  test(`DN-RELAY-SERVER-REPLY DN-RELAY-SESSION-ENDED: a reply and an ended session reach a node connected to another \
replica`, async () => {
    const moved: string[] = [];
    const { client, transport } = await legacyAgent(nodeA.mcpUrl, key.secret, {
      fetch: splitFetch(nodeB.mcpUrl, moved),
    });
    const sessionId = transport.sessionId!;
    try {
      await eventually(
        'server-everything listed on node A',
        async () => (await client.listTools()).tools.some((t) => t.name === 'ev__trigger-elicitation-request'),
        30_000,
      );
      client.setRequestHandler(ElicitRequestSchema, async () => ({
        action: 'accept',
        content: { name: 'Across Replicas' },
      }));
      const result = await client.callTool({ name: 'ev__trigger-elicitation-request', arguments: {} });
      assert.match(JSON.stringify(result.content), /Across Replicas/);
      assert.ok(
        moved.length > 0 && moved.every((m) => m === 'response'),
        `answers were posted to node B: ${moved.join(', ')}`,
      );
      await transport.terminateSession();
    } finally {
      await client.close();
    }
    const headers = { authorization: `Bearer ${key.secret}`, 'mcp-session-id': sessionId };
    await eventually(
      'node B (on the other replica) refuses the ended session',
      async () => (await postMcp(nodeB.mcpUrl, PING, headers)).status === 404,
      1_000,
    );
  });

  test(`DN-INPUT-OTHER-NODE: a retry landing on a node of the other replica is relayed across (NOTIFY); a retry too \
large for NOTIFY is refused at once, -32045 naming the node and saying why`, async () => {
    const moved: string[] = [];
    let name = 'Across';
    const client = await elicitingAgent(nodeA.mcpUrl, nodeB.mcpUrl, key.secret, moved);
    try {
      client.setRequestHandler('elicitation/create', async () => ({ action: 'accept', content: { name } }));
      await eventually(
        'server-everything listed on node A',
        async () => (await client.listTools()).tools.some((t) => t.name === 'ev__trigger-elicitation-request'),
        30_000,
      );
      const result = await client.callTool({ name: 'ev__trigger-elicitation-request', arguments: {} });
      assert.match(JSON.stringify(result.content), /Across/);
      assert.deepEqual(moved, ['tools/call']);
      // 6,000 characters of input make an envelope above what NOTIFY carries (base64, 7,600): the hub says so at once,
      // no timeout.
      name = 'x'.repeat(6_000);
      const started = Date.now();
      await assert.rejects(
        client.callTool({ name: 'ev__trigger-elicitation-request', arguments: {} }),
        /"node-a".*NOTIFY carries at most 7600/,
      );
      assert.ok(Date.now() - started < 3_000);
      assert.deepEqual(moved, ['tools/call', 'tools/call']);
    } finally {
      await client.close();
    }
  });
});

describe('ended sessions across a restart of the control plane and every node', () => {
  let schema: TestSchema;
  let controlPlane: ControlPlaneProcess;
  let node: DataPlaneProcess | undefined;
  let key: { id: string; secret: string };

  before(async () => {
    schema = await createTestSchema();
    controlPlane = await ControlPlaneProcess.start(schema.url, schema.name);
    node = await DataPlaneProcess.start(controlPlane, 'node-a');
    const created = await graphqlOk<{ createVirtualKey: { secret: string; key: { id: string } } }>(
      controlPlane.graphqlUrl,
      controlPlane.adminToken,
      CREATE_KEY,
      { input: { name: 'agent', allowedTools: ['*'] } },
    );
    key = { id: created.createVirtualKey.key.id, secret: created.createVirtualKey.secret };
    await eventually('the key reached the node', () => accepts(node!.mcpUrl, key.secret), 5_000);
  });

  after(async () => {
    await node?.stop();
    await controlPlane?.stop();
    await schema?.drop();
  });

  const endedRows = () =>
    schema.query<{ key_id: string; from_node_id: string; expires_at: Date }>(
      `SELECT key_id, from_node_id, expires_at FROM ended_sessions`,
    );

  test(`DN-RELAY-SESSION-ENDED-DURABLE: a DELETEd session is still refused after the control plane and the node \
restart together; other sessions are served`, async () => {
    const ended = await legacyAgent(node!.mcpUrl, key.secret);
    const kept = await legacyAgent(node!.mcpUrl, key.secret);
    const endedHeaders = { authorization: `Bearer ${key.secret}`, 'mcp-session-id': ended.transport.sessionId! };
    const keptHeaders = { authorization: `Bearer ${key.secret}`, 'mcp-session-id': kept.transport.sessionId! };
    await kept.client.close();
    await ended.transport.terminateSession();
    await ended.client.close();
    assert.equal((await postMcp(node!.mcpUrl, PING, endedHeaders)).status, 404);
    await eventually('the control plane stored the ended session', async () => (await endedRows()).length === 1, 5_000);
    const [row] = await endedRows();
    assert.equal(row!.key_id, key.id);
    assert.equal(row!.from_node_id, 'node-a');
    // Kept until the id would expire anyway: issue time + the node's 24 h maximum age, not longer.
    const untilExpiry = row!.expires_at.getTime() - Date.now();
    assert.ok(untilExpiry > 23 * 3_600_000 && untilExpiry <= 24 * 3_600_000, `expires in ${untilExpiry} ms`);

    await node!.stop();
    node = undefined;
    await controlPlane.stop();
    await controlPlane.restart();
    node = await DataPlaneProcess.start(controlPlane, 'node-a');
    await eventually('the key reached the restarted node', () => accepts(node!.mcpUrl, key.secret), 5_000);
    assert.equal(
      (await postMcp(node.mcpUrl, PING, keptHeaders)).status,
      200,
      'a session that was not ended is still valid after the restart',
    );
    assert.equal(
      (await postMcp(node.mcpUrl, PING, endedHeaders)).status,
      404,
      'the ended session stays refused after the restart',
    );
  });

  test(`DN-RELAY-SESSION-ENDED-DURABLE: rows past their expiry are pruned when the control plane starts; live ones \
are kept`, async () => {
    await schema.query(
      `INSERT INTO ended_sessions (session_sha256, session_id, key_id, from_node_id, expires_at)
       VALUES (decode(md5('expired'), 'hex'), 'expired.x', $1, 'node-x', now() - interval '1 second'),
              (decode(md5('live'), 'hex'), 'live.x', $1, 'node-x', now() + interval '1 hour')`,
      [key.id],
    );
    await controlPlane.stop();
    await controlPlane.restart();
    const ids = (
      await schema.query<{ session_id: string }>(`SELECT session_id FROM ended_sessions ORDER BY session_id`)
    ).map((r) => r.session_id);
    assert.ok(!ids.includes('expired.x'), `the expired row was pruned: ${ids.join(', ')}`);
    assert.ok(ids.includes('live.x'), 'the live row is kept');
  });
});
