import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { connectLegacyAgent, connectModernAgent, firstText } from '../support/agents.ts';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import { buildConfig, sessionKey, startServer, testKey, initializeRequest } from '../support/mcp-server-harness.ts';
import { eventually } from '../support/eventually.ts';

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const PING = { jsonrpc: '2.0', id: 7, method: 'ping' };
const INITIALIZE = initializeRequest('2025-11-25');

function router(): MemoryToolRouter {
  return new MemoryToolRouter([
    {
      upstream: 'public',
      name: 'echo',
      handler: (args) => ({ content: [{ type: 'text', text: String(args?.['text']) }] }),
    },
    { upstream: 'secret', name: 'launch' },
  ]);
}

const anonymous = testKey('anon', ['public__*']);
const admin = testKey('admin', ['*']);

async function rawPost(url: URL, headers: Record<string, string>, body: unknown) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { ...JSON_HEADERS, ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text === '' ? undefined : JSON.parse(text) };
}

test(`anonymous access: SDK clients sending no credentials act as the designated key, with its allow-list (2025-11-25 \
and 2026-07-28)`, async () => {
  const server = await startServer(router(), buildConfig([anonymous, admin]), {
    anonymousKeyId: 'anon',
  });
  try {
    const { client } = await connectLegacyAgent(server.url.href, undefined);
    assert.deepEqual(
      (await client.listTools()).tools.map((t) => t.name),
      ['public__echo'],
    );
    assert.equal(firstText(await client.callTool({ name: 'public__echo', arguments: { text: 'hi' } })), 'hi');
    await assert.rejects(client.callTool({ name: 'secret__launch', arguments: {} }));
    await client.close();

    const modern = await connectModernAgent(server.url.href, undefined);
    assert.deepEqual(
      (await modern.listTools()).tools.map((t) => t.name),
      ['public__echo'],
    );
    assert.equal(firstText(await modern.callTool({ name: 'public__echo', arguments: { text: 'modern' } })), 'modern');
    await modern.close();

    // A presented key still means that key: a valid one gets its own view, a wrong or malformed one 401.
    const { client: keyed } = await connectLegacyAgent(server.url.href, admin.secret);
    assert.deepEqual(
      (await keyed.listTools()).tools.map((t) => t.name),
      ['public__echo', 'secret__launch'],
    );
    await keyed.close();
    for (const headers of [
      { authorization: 'Bearer pcs_wrong' },
      { 'x-portcullis-key': 'pcs_wrong' },
      { authorization: 'Basic abc' },
    ] as Record<string, string>[]) {
      const refused = await rawPost(server.url, headers, PING);
      assert.equal(refused.status, 401, JSON.stringify(headers));
      assert.equal(refused.json.error.code, -32040);
    }
  } finally {
    await server.close();
  }
});

test('anonymous access: the legacy HTTP+SSE transport (GET /sse, POST /messages) without credentials', async () => {
  const server = await startServer(router(), buildConfig([anonymous]), { anonymousKeyId: 'anon' });
  try {
    const client = new Client({ name: 'sse-agent', version: '1.0.0' });
    await client.connect(new SSEClientTransport(new URL('/sse', server.url)));
    assert.deepEqual(
      (await client.listTools()).tools.map((t) => t.name),
      ['public__echo'],
    );
    assert.equal(firstText(await client.callTool({ name: 'public__echo', arguments: { text: 'sse' } })), 'sse');
    await client.close();
  } finally {
    await server.close();
  }
});

test(`anonymous access: off by default, and 401 saying why while the designated key is revoked or unknown; its \
streams end on revocation`, async () => {
  const off = await startServer(router(), buildConfig([anonymous]));
  try {
    const refused = await rawPost(off.url, {}, PING);
    assert.equal(refused.status, 401);
    assert.doesNotMatch(refused.json.error.message, /anonymous/);
  } finally {
    await off.close();
  }

  const server = await startServer(router(), buildConfig([anonymous]), { anonymousKeyId: 'anon' });
  try {
    assert.equal((await rawPost(server.url, {}, INITIALIZE)).status, 200);
    const { client } = await connectLegacyAgent(server.url.href, undefined);
    await eventually('the anonymous notification stream', () => server.gateway.notificationStreamCount === 1);

    server.config = buildConfig([admin], [sessionKey('s1')], '2');
    server.gateway.configChanged();
    await eventually(
      'the stream of the revoked anonymous key ends',
      () => server.gateway.notificationStreamCount === 0,
    );
    const revoked = await rawPost(server.url, {}, PING);
    assert.equal(revoked.status, 401);
    assert.match(revoked.json.error.message, /anonymous-access key .* revoked/);
    assert.equal(revoked.json.id, null, 'refused before the body is read');
    await client.close().catch(() => undefined);
  } finally {
    await server.close();
  }
});
