import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { signSessionToken, type SessionClaims } from '../../data-plane/src/mcp/session-token.ts';
import { prefersEventStream } from '../../data-plane/src/http/response-channel.ts';
import { HTTP_TEST_TOOLS, MemoryToolRouter } from '../support/memory-tool-router.ts';
import {
  buildConfig,
  sessionKey,
  startServer,
  testKey,
  type RunningServer,
  type TestKey,
  initializeRequest,
} from '../support/mcp-server-harness.ts';
import { eventually } from '../support/eventually.ts';

function router(): MemoryToolRouter {
  return new MemoryToolRouter(HTTP_TEST_TOOLS);
}

function transport(server: RunningServer, key: TestKey, sessionId?: string): StreamableHTTPClientTransport {
  return new StreamableHTTPClientTransport(server.url, {
    requestInit: { headers: { authorization: `Bearer ${key.secret}` } },
    sessionId,
  });
}

async function legacyClient(
  server: RunningServer,
  key: TestKey,
  sessionId?: string,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'legacy-agent', version: '1.0.0' });
  const t = transport(server, key, sessionId);
  await client.connect(t);
  return { client, transport: t };
}

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

async function rawPost(
  server: RunningServer,
  headers: Record<string, string>,
  body: unknown,
): Promise<{ status: number; headers: Headers; json: any }> {
  const response = await fetch(server.url, {
    method: 'POST',
    headers: { ...JSON_HEADERS, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text === '' ? undefined : JSON.parse(text) };
}

test('2025-11-25: the v1 client initializes, lists its allowed tools and calls one', async () => {
  const key = testKey('k1', ['everything__*']);
  const server = await startServer(router(), buildConfig([key]));
  try {
    const { client, transport: t } = await legacyClient(server, key);
    assert.equal(client.getServerVersion()?.name, 'portcullis-test');
    assert.deepEqual(client.getServerCapabilities(), { tools: { listChanged: true } });
    assert.ok(t.sessionId?.includes('.'), 'a signed session id was handed out');
    assert.deepEqual(
      (await client.listTools()).tools.map((t) => t.name),
      ['everything__echo', 'everything__add'],
    );
    const result = await client.callTool({ name: 'everything__add', arguments: { a: 40, b: 2 } });
    assert.deepEqual(result.content, [{ type: 'text', text: '42' }]);
    assert.equal(result['resultType'], undefined, '2025 results carry no 2026 fields');
    await client.ping();
    await client.close();
  } finally {
    await server.close();
  }
});

test('2025-11-25: unknown and forbidden tools give the same error', async () => {
  const key = testKey('k1', ['everything__*']);
  const server = await startServer(router(), buildConfig([key]));
  try {
    const { client } = await legacyClient(server, key);
    const errorOf = async (name: string) => {
      const error = await client.callTool({ name, arguments: {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(error instanceof McpError, `expected McpError, got ${String(error)}`);
      return error;
    };
    const forbidden = await errorOf('secret__launch');
    const unknown = await errorOf('secret__lunch');
    assert.equal(forbidden.code, -32602);
    assert.equal(unknown.code, forbidden.code);
    assert.equal(unknown.message.replace('lunch', 'launch'), forbidden.message);
    await client.close();
  } finally {
    await server.close();
  }
});

test('a session started on one node continues on another node with the same session keys', async () => {
  const key = testKey('k1', ['everything__*']);
  const keys = [sessionKey('s1')];
  const tools = router();
  const first = await startServer(tools, buildConfig([key], keys));
  const second = await startServer(tools, buildConfig([key], keys));
  const stranger = await startServer(tools, buildConfig([key]));
  try {
    const { client, transport: t } = await legacyClient(first, key);
    const sessionId = t.sessionId!;
    await client.close();
    await first.close();

    const resumed = await legacyClient(second, key, sessionId);
    assert.deepEqual(
      (await resumed.client.listTools()).tools.map((x) => x.name),
      ['everything__echo', 'everything__add'],
    );
    await resumed.client.close();

    // Same key id, different secret: the token does not verify there.
    const elsewhere = await legacyClient(stranger, key, sessionId);
    await assert.rejects(elsewhere.client.listTools(), (error: unknown) => /404|Session not found/.test(String(error)));
    await elsewhere.client.close();
  } finally {
    await Promise.all([first.close(), second.close(), stranger.close()]);
  }
});

test(`session ids: missing → 400, tampered or signed for another key → 404, rotated-out key → 404, previous key still \
verifies`, async () => {
  const alice = testKey('alice', ['*']);
  const bob = testKey('bob', ['*']);
  const old = sessionKey('old');
  const server = await startServer(router(), buildConfig([alice, bob], [old]));
  try {
    const init = await rawPost(server, { authorization: `Bearer ${alice.secret}` }, initializeRequest('2025-06-18'));
    const sessionId = init.headers.get('mcp-session-id')!;
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' };
    const as = (key: TestKey, session?: string) => ({
      authorization: `Bearer ${key.secret}`,
      'mcp-protocol-version': '2025-06-18',
      ...(session === undefined ? {} : { 'mcp-session-id': session }),
    });

    assert.equal((await rawPost(server, as(alice, sessionId), list)).status, 200);
    const missing = await rawPost(server, as(alice), list);
    assert.equal(missing.status, 400);
    assert.equal(missing.json.error.code, -32000);
    assert.match(missing.json.error.message, /Mcp-Session-Id header is required/);

    const [payload, mac] = sessionId.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const forged = `${Buffer.from(JSON.stringify({ ...claims, keyId: 'bob' })).toString('base64url')}.${mac}`;
    const tampered = await rawPost(server, as(bob, forged), list);
    assert.equal(tampered.status, 404);
    assert.equal(tampered.json.error.code, -32001);
    const flipped = `${payload}.${mac.slice(0, -2)}${mac.endsWith('AA') ? 'BB' : 'AA'}`;
    assert.equal((await rawPost(server, as(alice, flipped), list)).status, 404);
    assert.equal((await rawPost(server, as(alice, 'garbage'), list)).status, 404);
    assert.equal(
      (await rawPost(server, as(bob, sessionId), list)).status,
      404,
      "another key cannot ride alice's session",
    );

    // Rotation: a new key signs, the old one still verifies; once dropped, its sessions are gone.
    server.config = buildConfig([alice, bob], [sessionKey('new'), old], '2');
    assert.equal((await rawPost(server, as(alice, sessionId), list)).status, 200);
    server.config = buildConfig([alice, bob], [sessionKey('new')], '3');
    assert.equal((await rawPost(server, as(alice, sessionId), list)).status, 404);
  } finally {
    await server.close();
  }
});

test('initialize negotiates the requested 2025 revision, or the latest for an unknown one', async () => {
  const key = testKey('k1', ['*']);
  const server = await startServer(router(), buildConfig([key]));
  try {
    const negotiate = async (requested: string) => {
      const response = await rawPost(
        server,
        { authorization: `Bearer ${key.secret}` },
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: requested,
            capabilities: { roots: {} },
            clientInfo: { name: 'raw', version: '1' },
          },
        },
      );
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'application/json');
      const sessionId = response.headers.get('mcp-session-id');
      assert.ok(sessionId);
      const claims = JSON.parse(Buffer.from(sessionId.split('.')[0]!, 'base64url').toString());
      assert.equal(claims.protocolVersion, response.json.result.protocolVersion);
      assert.equal(claims.keyId, 'k1');
      assert.equal(claims.sk, 's1', 'the payload names the signing key (signed-token.ts)');
      assert.deepEqual(claims.clientInfo, { name: 'raw', version: '1' });
      assert.deepEqual(claims.clientCapabilities, { roots: {} });
      return response.json.result;
    };
    assert.equal((await negotiate('2024-11-05')).protocolVersion, '2024-11-05');
    assert.equal((await negotiate('2025-03-26')).protocolVersion, '2025-03-26');
    assert.equal((await negotiate('2025-11-25')).protocolVersion, '2025-11-25');
    const fallback = await negotiate('1999-01-01');
    assert.equal(fallback.protocolVersion, '2025-11-25');
    assert.deepEqual(fallback.serverInfo, { name: 'portcullis-test', version: '0.0.0' });
    assert.deepEqual(fallback.capabilities, { tools: { listChanged: true } });

    const bad = await rawPost(
      server,
      { authorization: `Bearer ${key.secret}` },
      { jsonrpc: '2.0', id: 1, method: 'initialize', params: { capabilities: {} } },
    );
    assert.equal(bad.json.error.code, -32602);
    assert.equal(bad.headers.get('mcp-session-id'), null);
  } finally {
    await server.close();
  }
});

test('2025 era: notifications get 202, unknown methods -32601, batches are answered in order, DELETE 200', async () => {
  const key = testKey('k1', ['everything__echo']);
  const server = await startServer(router(), buildConfig([key]));
  try {
    const init = await rawPost(server, { 'x-portcullis-key': key.secret }, initializeRequest('2025-03-26'));
    const headers = {
      'x-portcullis-key': key.secret,
      'mcp-session-id': init.headers.get('mcp-session-id')!,
      'mcp-protocol-version': '2025-03-26',
    };
    const initialized = await rawPost(server, headers, { jsonrpc: '2.0', method: 'notifications/initialized' });
    assert.equal(initialized.status, 202);
    const unknown = await rawPost(server, headers, { jsonrpc: '2.0', id: 5, method: 'foo/bar' });
    assert.equal(unknown.status, 200);
    assert.deepEqual(unknown.json, { jsonrpc: '2.0', id: 5, error: { code: -32601, message: 'Method not found' } });
    const discover = await rawPost(server, headers, { jsonrpc: '2.0', id: 6, method: 'server/discover' });
    assert.equal(discover.json.error.code, -32601, 'server/discover is a 2026-07-28 method');
    const batch = await rawPost(server, headers, [
      { jsonrpc: '2.0', id: 'a', method: 'ping' },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      {
        jsonrpc: '2.0',
        id: 'b',
        method: 'tools/call',
        params: { name: 'everything__echo', arguments: { text: 'hi' } },
      },
    ]);
    assert.equal(batch.status, 200);
    assert.deepEqual(batch.json, [
      { jsonrpc: '2.0', id: 'a', result: {} },
      { jsonrpc: '2.0', id: 'b', result: { content: [{ type: 'text', text: 'Echo: hi' }] } },
    ]);
    const badVersion = await rawPost(
      server,
      { ...headers, 'mcp-protocol-version': '2023-01-01' },
      { jsonrpc: '2.0', id: 7, method: 'ping' },
    );
    assert.equal(badVersion.status, 400);
    assert.match(badVersion.json.error.message, /Unsupported protocol version: 2023-01-01/);
    const deleted = await fetch(server.url, { method: 'DELETE', headers });
    assert.equal(deleted.status, 200);
    const deletedWithout = await fetch(server.url, { method: 'DELETE', headers: { 'x-portcullis-key': key.secret } });
    assert.equal(deletedWithout.status, 400);
  } finally {
    await server.close();
  }
});

test('list_changed reaches the v1 client on its GET stream when the catalog or its key changes', async () => {
  const key = testKey('k1', ['everything__*']);
  const tools = router();
  const server = await startServer(tools, buildConfig([key]));
  try {
    const { client } = await legacyClient(server, key);
    let notified = 0;
    let wake: (() => void) | undefined;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      notified += 1;
      wake?.();
    });
    const next = (what: string) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no list_changed after ${what}`)), 2000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    await eventually('the GET stream', () => server.gateway.notificationStreamCount > 0, 1000).catch(() => undefined);
    assert.equal(server.gateway.notificationStreamCount, 1, 'the client opened its GET stream');

    let arrived = next('adding a visible tool');
    tools.add({ upstream: 'everything', name: 'new-tool' });
    await arrived;
    assert.equal(notified, 1);

    // A tool this key cannot see changes nothing for it.
    tools.add({ upstream: 'secret', name: 'other' });
    // A fixed time on purpose: that nothing arrives in it is the behaviour under test.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(notified, 1);

    // A new snapshot that widens the key's allow-list changes its view.
    arrived = next('a snapshot changing the allow-list');
    server.config = buildConfig([{ ...key, allowedTools: ['*'] }], server.config!.sessionKeys, '2');
    server.gateway.configChanged();
    await arrived;
    assert.equal(notified, 2);
    assert.ok((await client.listTools()).tools.some((t) => t.name === 'secret__other'));

    // Revoking the key ends its stream.
    server.config = buildConfig([], server.config.sessionKeys, '3');
    server.gateway.configChanged();
    assert.equal(server.gateway.notificationStreamCount, 0);
    await client.close();
  } finally {
    await server.close();
  }
});

test(`DN-TRANSPORT-DELETE DN-SESSION-MAX-AGE: an ended session id is refused (404) on POST, GET and DELETE, its GET \
stream closes, other sessions go on; an id past its maximum age is refused`, async () => {
  const key = testKey('k1', ['everything__echo']);
  const signing = sessionKey('s1');
  const server = await startServer(router(), buildConfig([key], [signing]), { sessionMaxAgeMs: 60 * 60 * 1000 });
  try {
    const open = async () =>
      (await rawPost(server, { 'x-portcullis-key': key.secret }, initializeRequest('2025-06-18'))).headers.get(
        'mcp-session-id',
      )!;
    const as = (session: string) => ({
      'x-portcullis-key': key.secret,
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-06-18',
    });
    const ping = { jsonrpc: '2.0', id: 2, method: 'ping' };
    const ended = await open();
    const other = await open();
    const stream = await fetch(server.url, { headers: { ...as(ended), accept: 'text/event-stream' } });
    assert.equal(stream.status, 200);
    const streamEnded = stream.text();

    assert.equal((await fetch(server.url, { method: 'DELETE', headers: as(ended) })).status, 200);
    assert.equal(await streamEnded, '', 'the GET stream of the ended session is closed');
    const refused = await rawPost(server, as(ended), ping);
    assert.equal(refused.status, 404);
    assert.equal(refused.json.error.code, -32001);
    assert.equal((await fetch(server.url, { headers: { ...as(ended), accept: 'text/event-stream' } })).status, 404);
    assert.equal((await fetch(server.url, { method: 'DELETE', headers: as(ended) })).status, 404);
    assert.equal((await rawPost(server, as(other), ping)).status, 200, 'another session of the same key goes on');

    const { sk: _signingKey, ...claims } = JSON.parse(
      Buffer.from(other.split('.')[0]!, 'base64url').toString(),
    ) as Omit<SessionClaims, 'signingKeyId'> & { sk: string };
    const old = signSessionToken({ ...claims, issuedAt: Math.floor(Date.now() / 1000) - 2 * 60 * 60 }, [signing]);
    assert.equal(
      (await rawPost(server, as(old), ping)).status,
      404,
      'issued two hours ago, with a one-hour maximum age',
    );
    const young = signSessionToken({ ...claims, issuedAt: Math.floor(Date.now() / 1000) - 30 * 60 }, [signing]);
    assert.equal((await rawPost(server, as(young), ping)).status, 200);
  } finally {
    await server.close();
  }
});

test(`DN-TRANSPORT-SSE-RESPONSE: a 2025 agent that ranks text/event-stream first in Accept gets its answer as an \
event stream; JSON first (as the SDK clients send) gets plain JSON`, async () => {
  assert.equal(prefersEventStream('application/json, text/event-stream'), false);
  assert.equal(prefersEventStream('text/event-stream, application/json'), true);
  assert.equal(prefersEventStream('application/json;q=0.5, text/event-stream'), true);
  assert.equal(prefersEventStream('text/event-stream;q=0.2, application/json'), false);
  const key = testKey('k1', ['everything__echo']);
  const server = await startServer(router(), buildConfig([key]));
  try {
    const init = await rawPost(server, { 'x-portcullis-key': key.secret }, initializeRequest('2025-11-25'));
    const headers = {
      'content-type': 'application/json',
      'x-portcullis-key': key.secret,
      'mcp-session-id': init.headers.get('mcp-session-id')!,
      'mcp-protocol-version': '2025-11-25',
    };
    const list = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' });
    const streamed = await fetch(server.url, {
      method: 'POST',
      headers: { ...headers, accept: 'text/event-stream, application/json' },
      body: list,
    });
    assert.equal(streamed.status, 200);
    assert.equal(streamed.headers.get('content-type'), 'text/event-stream');
    const event = await streamed.text();
    // A 2025-11-25 stream opens with a priming event (id, retry, empty data); every event has an id.
    assert.match(event, /^id: \S+\nretry: \d+\ndata: \n\nid: \S+\nevent: message\ndata: /);
    const message = JSON.parse(event.slice(event.lastIndexOf('data: ') + 6)) as {
      id: number;
      result: { tools: { name: string }[] };
    };
    assert.equal(message.id, 7);
    assert.deepEqual(
      message.result.tools.map((t) => t.name),
      ['everything__echo'],
    );
    const plain = await fetch(server.url, {
      method: 'POST',
      headers: { ...headers, accept: 'application/json, text/event-stream' },
      body: list,
    });
    assert.match(plain.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(((await plain.json()) as { id: number }).id, 7);
  } finally {
    await server.close();
  }
});
