import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { firstText } from '../support/agents.ts';
import { TSX_LOADER } from '../support/conformance.ts';
import { createTestSchema, type TestSchema } from '../support/database.ts';
import { ControlPlaneProcess, DataPlaneProcess, accepts, eventually, postMcp } from '../support/gateway.ts';
import { CREATE_KEY, CREATE_UPSTREAM, graphqlOk } from '../support/graphql.ts';
import { EVERYTHING_SERVER, REPO_ROOT } from '../support/processes.ts';

/**
 * Relays between data-plane nodes through the control plane (ConfigService.Connect, RelayEnvelope):
 * a 2025-era agent's messages that must reach the node holding what they refer to. Real processes:
 * the control plane on PostgreSQL (a schema of its own), two (then three) data-plane nodes,
 * server-everything and an SDK v1 server over stdio, the official SDK v1 client as the agent, whose
 * fetch sends some POSTs to the other node, as a load balancer may.
 */

const PING = { jsonrpc: '2.0', id: 7, method: 'ping' };

/** The agent's fetch: JSON-RPC responses and notifications/cancelled go to `other`, everything else where the SDK sends it. */
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

async function legacyAgent(url: string, secret: string, options: { fetch?: typeof fetch; sessionId?: string } = {}): Promise<{ client: ClientV1; transport: TransportV1 }> {
  const client = new ClientV1({ name: 'relay-test-agent', version: '1.0.0' }, { capabilities: { elicitation: { form: {} } } });
  const transport = new TransportV1(new URL(url), { requestInit: { headers: { authorization: `Bearer ${secret}` } }, ...(options.fetch ? { fetch: options.fetch } : {}), ...(options.sessionId ? { sessionId: options.sessionId } : {}) });
  await client.connect(transport);
  return { client, transport };
}

describe('relays between data-plane nodes through the control plane', () => {
  let schema: TestSchema;
  let controlPlane: ControlPlaneProcess;
  let nodeA: DataPlaneProcess;
  let nodeB: DataPlaneProcess;
  let nodeC: DataPlaneProcess | undefined;
  let key: { id: string; secret: string };

  before(async () => {
    schema = await createTestSchema();
    controlPlane = await ControlPlaneProcess.start(schema.url, schema.name);
    [nodeA, nodeB] = await Promise.all([DataPlaneProcess.start(controlPlane, 'node-a'), DataPlaneProcess.start(controlPlane, 'node-b')]);
    const gql = controlPlane.graphqlUrl;
    await graphqlOk(gql, controlPlane.adminToken, CREATE_UPSTREAM, { input: { name: 'ev', transport: 'STDIO', command: process.execPath, args: [EVERYTHING_SERVER, 'stdio'] } });
    await graphqlOk(gql, controlPlane.adminToken, CREATE_UPSTREAM, {
      input: { name: 'v1', transport: 'STDIO', command: process.execPath, args: ['--import', TSX_LOADER, resolve(REPO_ROOT, 'test/fixtures/input-upstream-2025/main.ts')] },
    });
    const created = await graphqlOk<{ createVirtualKey: { secret: string; key: { id: string } } }>(gql, controlPlane.adminToken, CREATE_KEY, { input: { name: 'agent', allowedTools: ['ev__*', 'v1__*'] } });
    key = { id: created.createVirtualKey.key.id, secret: created.createVirtualKey.secret };
    await eventually('the key reached both nodes', async () => (await accepts(nodeA.mcpUrl, key.secret)) && (await accepts(nodeB.mcpUrl, key.secret)), 5_000);
  });

  after(async () => {
    await Promise.allSettled([nodeA?.stop(), nodeB?.stop(), nodeC?.stop()]);
    await controlPlane?.stop();
    await schema?.drop();
  });

  async function toolsReady(client: ClientV1, names: string[]): Promise<void> {
    await eventually(`tools ${names.join(', ')} listed`, async () => {
      const listed = (await client.listTools()).tools.map((t) => t.name);
      return names.every((name) => listed.includes(name));
    }, 30_000);
  }

  test('DN-RELAY-SERVER-REPLY: an elicitation answered by a POST that lands on the other node completes the call', async () => {
    const moved: string[] = [];
    const { client } = await legacyAgent(nodeA.mcpUrl, key.secret, { fetch: splitFetch(nodeB.mcpUrl, moved) });
    try {
      await toolsReady(client, ['ev__trigger-elicitation-request', 'v1__ask_twice']);
      let asked = 0;
      client.setRequestHandler(ElicitRequestSchema, async (request) => {
        asked += 1;
        const field = 'requestedSchema' in request.params && Object.keys(request.params.requestedSchema.properties).includes('colour') ? 'colour' : 'name';
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
      await toolsReady(client, ['v1__ask_then_work', 'v1__cancellations']);
      const before = Number(firstText(await client.callTool({ name: 'v1__cancellations', arguments: {} })));
      let answered!: () => void;
      const asked = new Promise<void>((resolve) => (answered = resolve));
      client.setRequestHandler(ElicitRequestSchema, async () => {
        setTimeout(answered, 200);
        return { action: 'accept', content: { name: 'worker' } };
      });
      const controller = new AbortController();
      const call = client.callTool({ name: 'v1__ask_then_work', arguments: {} }, undefined, { signal: controller.signal });
      await asked;
      controller.abort('enough');
      await assert.rejects(call);
      // The upstream works for 10 s unless cancelled; a dropped resumable stream alone would not cancel it within 30 s.
      const waited = await eventually('the upstream call was cancelled', async () => Number(firstText(await client.callTool({ name: 'v1__cancellations', arguments: {} }))) === before + 1, 4_000);
      assert.ok(waited < 4_000);
      assert.ok(moved.includes('notifications/cancelled'), 'the cancel was posted to node B');
    } finally {
      await client.close();
    }
  });

  test('DN-RELAY-SESSION-ENDED: a session DELETEd on node A gets 404 on node B within a second, and on a node started afterwards', async () => {
    const { client, transport } = await legacyAgent(nodeA.mcpUrl, key.secret);
    const sessionId = transport.sessionId;
    assert.ok(sessionId);
    const headers = { authorization: `Bearer ${key.secret}`, 'mcp-session-id': sessionId };
    assert.equal((await postMcp(nodeB.mcpUrl, PING, headers)).status, 200, 'node B serves the session before the DELETE');
    await transport.terminateSession();
    await client.close();
    assert.equal((await postMcp(nodeA.mcpUrl, PING, headers)).status, 404);
    const took = await eventually('node B refuses the ended session', async () => (await postMcp(nodeB.mcpUrl, PING, headers)).status === 404, 1_000);
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
  let schema: TestSchema;
  let replica1: ControlPlaneProcess;
  let replica2: ControlPlaneProcess;
  let nodeA: DataPlaneProcess;
  let nodeB: DataPlaneProcess;
  let key: { id: string; secret: string };

  before(async () => {
    schema = await createTestSchema();
    replica1 = await ControlPlaneProcess.start(schema.url, schema.name);
    replica2 = await ControlPlaneProcess.start(schema.url, schema.name);
    [nodeA, nodeB] = await Promise.all([DataPlaneProcess.start(replica1, 'node-a'), DataPlaneProcess.start(replica2, 'node-b')]);
    await graphqlOk(replica1.graphqlUrl, replica1.adminToken, CREATE_UPSTREAM, { input: { name: 'ev', transport: 'STDIO', command: process.execPath, args: [EVERYTHING_SERVER, 'stdio'] } });
    const created = await graphqlOk<{ createVirtualKey: { secret: string; key: { id: string } } }>(replica1.graphqlUrl, replica1.adminToken, CREATE_KEY, { input: { name: 'agent', allowedTools: ['ev__*'] } });
    key = { id: created.createVirtualKey.key.id, secret: created.createVirtualKey.secret };
    await eventually('the key reached both nodes', async () => (await accepts(nodeA.mcpUrl, key.secret)) && (await accepts(nodeB.mcpUrl, key.secret)), 5_000);
  });

  after(async () => {
    await Promise.allSettled([nodeA?.stop(), nodeB?.stop()]);
    await Promise.allSettled([replica1?.stop(), replica2?.stop()]);
    await schema?.drop();
  });

  test('DN-RELAY-SERVER-REPLY DN-RELAY-SESSION-ENDED: a reply and an ended session reach a node connected to another replica', async () => {
    const moved: string[] = [];
    const { client, transport } = await legacyAgent(nodeA.mcpUrl, key.secret, { fetch: splitFetch(nodeB.mcpUrl, moved) });
    const sessionId = transport.sessionId!;
    try {
      await eventually('server-everything listed on node A', async () => (await client.listTools()).tools.some((t) => t.name === 'ev__trigger-elicitation-request'), 30_000);
      client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { name: 'Across Replicas' } }));
      const result = await client.callTool({ name: 'ev__trigger-elicitation-request', arguments: {} });
      assert.match(JSON.stringify(result.content), /Across Replicas/);
      assert.ok(moved.length > 0 && moved.every((m) => m === 'response'), `answers were posted to node B: ${moved.join(', ')}`);
      await transport.terminateSession();
    } finally {
      await client.close();
    }
    const headers = { authorization: `Bearer ${key.secret}`, 'mcp-session-id': sessionId };
    await eventually('node B (on the other replica) refuses the ended session', async () => (await postMcp(nodeB.mcpUrl, PING, headers)).status === 404, 1_000);
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
    const created = await graphqlOk<{ createVirtualKey: { secret: string; key: { id: string } } }>(controlPlane.graphqlUrl, controlPlane.adminToken, CREATE_KEY, { input: { name: 'agent', allowedTools: ['*'] } });
    key = { id: created.createVirtualKey.key.id, secret: created.createVirtualKey.secret };
    await eventually('the key reached the node', () => accepts(node!.mcpUrl, key.secret), 5_000);
  });

  after(async () => {
    await node?.stop();
    await controlPlane?.stop();
    await schema?.drop();
  });

  const endedRows = () => schema.query<{ key_id: string; from_node_id: string; expires_at: Date }>(`SELECT key_id, from_node_id, expires_at FROM ended_sessions`);

  test('DN-RELAY-SESSION-ENDED-DURABLE: a DELETEd session is still refused after the control plane and the node restart together; other sessions are served', async () => {
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
    assert.equal((await postMcp(node.mcpUrl, PING, keptHeaders)).status, 200, 'a session that was not ended is still valid after the restart');
    assert.equal((await postMcp(node.mcpUrl, PING, endedHeaders)).status, 404, 'the ended session stays refused after the restart');
  });

  test('DN-RELAY-SESSION-ENDED-DURABLE: rows past their expiry are pruned when the control plane starts; live ones are kept', async () => {
    await schema.query(
      `INSERT INTO ended_sessions (session_sha256, session_id, key_id, from_node_id, expires_at)
       VALUES (decode(md5('expired'), 'hex'), 'expired.x', $1, 'node-x', now() - interval '1 second'),
              (decode(md5('live'), 'hex'), 'live.x', $1, 'node-x', now() + interval '1 hour')`,
      [key.id],
    );
    await controlPlane.stop();
    await controlPlane.restart();
    const ids = (await schema.query<{ session_id: string }>(`SELECT session_id FROM ended_sessions ORDER BY session_id`)).map((r) => r.session_id);
    assert.ok(!ids.includes('expired.x'), `the expired row was pruned: ${ids.join(', ')}`);
    assert.ok(ids.includes('live.x'), 'the live row is kept');
  });
});
