import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { ProtocolError } from '@modelcontextprotocol/server';
import { UpstreamRpcError } from '../../data-plane/src/upstream/upstream-rpc-error.ts';
import { HTTP_TEST_TOOLS, MemoryToolRouter } from '../support/memory-tool-router.ts';
import {
  buildConfig,
  postModern,
  startServer,
  testKey,
  type RunningServer,
  type TestKey,
} from '../support/mcp-server-harness.ts';

const MODERN = '2026-07-28';

function router(): MemoryToolRouter {
  return new MemoryToolRouter([
    ...HTTP_TEST_TOOLS,
    {
      upstream: 'flaky',
      name: 'fail',
      handler: () => Promise.reject(new UpstreamRpcError(-32603, 'upstream exploded', { detail: 1 })),
    },
    { upstream: 'down', name: 'gone', available: false },
  ]);
}

/** A v2 SDK client pinned to the stateless revision, authenticating with `key`. */
async function modernClient(server: RunningServer, key: TestKey | undefined): Promise<Client> {
  const client = new Client(
    { name: 'modern-agent', version: '1.0.0' },
    { versionNegotiation: { mode: { pin: MODERN } } },
  );
  const headers: Record<string, string> = key === undefined ? {} : { authorization: `Bearer ${key.secret}` };
  await client.connect(new StreamableHTTPClientTransport(server.url, { requestInit: { headers } }));
  return client;
}

async function withServer(
  keys: TestKey[],
  fn: (server: RunningServer, tools: MemoryToolRouter) => Promise<void>,
): Promise<void> {
  const tools = router();
  const server = await startServer(tools, buildConfig(keys));
  try {
    await fn(server, tools);
  } finally {
    await server.close();
  }
}

test('2026-07-28: a pinned v2 client lists only the tools its allow-list allows', async () => {
  const key = testKey('k1', ['everything__*', 'flaky__fail']);
  await withServer([key], async (server) => {
    const client = await modernClient(server, key);
    const listed = await client.listTools();
    assert.deepEqual(
      listed.tools.map((t) => t.name),
      ['everything__echo', 'everything__add', 'flaky__fail'],
    );
    await client.close();
  });
});

test(`2026-07-28: a tool call reaches the router with the agent _meta (minus the envelope) and returns its \
result`, async () => {
  const key = testKey('k1', ['*']);
  await withServer([key], async (server, tools) => {
    const client = await modernClient(server, key);
    const result = await client.callTool({
      name: 'everything__add',
      arguments: { a: 2, b: 3 },
      _meta: { progressToken: 'p-1', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    });
    assert.deepEqual(result.content, [{ type: 'text', text: '5' }]);
    const call = tools.calls.at(-1);
    assert.equal(call?.exposedName, 'everything__add');
    assert.deepEqual(call?.args, { a: 2, b: 3 });
    assert.deepEqual(call?.options.meta, {
      progressToken: 'p-1',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    });
    assert.ok(call?.options.signal instanceof AbortSignal);
    await client.close();
  });
});

test('2026-07-28: unknown and forbidden tools fail identically', async () => {
  const key = testKey('k1', ['everything__*']);
  await withServer([key], async (server) => {
    const client = await modernClient(server, key);
    const failure = async (name: string): Promise<ProtocolError> => {
      try {
        await client.callTool({ name, arguments: {} });
      } catch (error) {
        assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
        return error;
      }
      assert.fail(`${name} should have failed`);
    };
    const forbidden = await failure('secret__launch');
    const unknown = await failure('secret__launcx');
    assert.equal(forbidden.code, -32602);
    assert.equal(unknown.code, forbidden.code);
    assert.equal(forbidden.message, 'Tool secret__launch not found');
    assert.equal(unknown.message.replace('launcx', 'launch'), forbidden.message);
    assert.deepEqual(unknown.data, forbidden.data);
    await client.close();
  });
});

test(`2026-07-28: upstream JSON-RPC errors are relayed; an unavailable upstream is named in an isError \
result`, async () => {
  const key = testKey('k1', ['*']);
  await withServer([key], async (server) => {
    const client = await modernClient(server, key);
    await assert.rejects(client.callTool({ name: 'flaky__fail', arguments: {} }), (error: unknown) => {
      assert.ok(error instanceof ProtocolError);
      assert.equal(error.code, -32603);
      assert.equal(error.message, 'upstream exploded');
      assert.deepEqual(error.data, { detail: 1 });
      return true;
    });
    // Issue 13: an upstream that cannot run the call is an execution failure the model sees (isError), not a protocol
    // error.
    const unavailable = await client.callTool({ name: 'down__gone', arguments: {} });
    assert.equal(unavailable.isError, true);
    assert.match(JSON.stringify(unavailable.content), /Upstream \\"down\\"/);
    assert.deepEqual(unavailable._meta?.['dev.portcullis/error'], {
      upstream: 'down',
      reason: 'UPSTREAM_UNAVAILABLE',
      retryable: true,
    });
    await client.close();
  });
});

test('2026-07-28: server/discover, cache fields and resultType on the wire', async () => {
  const key = testKey('k1', ['everything__echo']);
  await withServer([key], async (server) => {
    const post = async (method: string, params: Record<string, unknown>, extra: Record<string, string> = {}) => {
      const response = await postModern(server.url, key.secret, method, params, extra);
      assert.equal(response.contentType, 'application/json');
      return response;
    };
    const discover = await post('server/discover', {});
    assert.equal(discover.status, 200);
    assert.deepEqual(discover.body.result['supportedVersions'], [MODERN]);
    assert.deepEqual(discover.body.result['capabilities'], { tools: { listChanged: true } });
    assert.equal(discover.body.result['resultType'], 'complete');
    const list = await post('tools/list', {});
    assert.equal(list.body.result['resultType'], 'complete');
    assert.equal(list.body.result['cacheScope'], 'private');
    assert.equal(list.body.result['ttlMs'], 0);
    assert.deepEqual((list.body.result['_meta'] as Record<string, unknown>)['io.modelcontextprotocol/serverInfo'], {
      name: 'portcullis-test',
      version: '0.0.0',
    });
    const call = await post(
      'tools/call',
      { name: 'everything__echo', arguments: { text: 'x' } },
      { 'mcp-name': 'everything__echo' },
    );
    assert.equal(call.body.result['resultType'], 'complete');
    assert.deepEqual(call.body.result['content'], [{ type: 'text', text: 'Echo: x' }]);
    assert.equal(call.body.result['ttlMs'], undefined, 'tools/call results are not cacheable');
  });
});

test('2026-07-28: headers that disagree with the body are refused as the SDK server does', async () => {
  const key = testKey('k1', ['*']);
  await withServer([key], async (server) => {
    const envelope = (version: string) => ({
      'io.modelcontextprotocol/protocolVersion': version,
      'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
      'io.modelcontextprotocol/clientCapabilities': {},
    });
    const send = async (headers: Record<string, string>, body: unknown) => {
      const response = await fetch(server.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'x-portcullis-key': key.secret,
          ...headers,
        },
        body: JSON.stringify(body),
      });
      return {
        status: response.status,
        body: (await response.json()) as { id: unknown; error: { code: number; message: string; data?: unknown } },
      };
    };
    const list = { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: envelope(MODERN) } };
    const versionMismatch = await send({ 'mcp-protocol-version': '2025-11-25', 'mcp-method': 'tools/list' }, list);
    assert.equal(versionMismatch.status, 400);
    assert.equal(versionMismatch.body.error.code, -32020);
    assert.equal(versionMismatch.body.id, 1);
    const methodMismatch = await send({ 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call' }, list);
    assert.equal(methodMismatch.status, 400);
    assert.equal(methodMismatch.body.error.code, -32020);
    const missingMethod = await send({ 'mcp-protocol-version': MODERN }, list);
    assert.equal(missingMethod.body.error.code, -32020);
    const call = {
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'everything__echo', arguments: {}, _meta: envelope(MODERN) },
    };
    const nameMismatch = await send(
      { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'secret__launch' },
      call,
    );
    assert.equal(nameMismatch.status, 400);
    assert.equal(nameMismatch.body.error.code, -32020);
    assert.deepEqual(nameMismatch.body.error.data, {
      mismatch: {
        header: 'secret__launch',
        body: 'the body carries params.name="everything__echo" but the Mcp-Name header names "secret__launch"',
      },
    });
    const base64Name = await send(
      {
        'mcp-protocol-version': MODERN,
        'mcp-method': 'tools/call',
        'mcp-name': `=?base64?${Buffer.from('everything__echo').toString('base64')}?=`,
      },
      call,
    );
    assert.equal(base64Name.status, 200);
    const unsupported = await send(
      { 'mcp-protocol-version': '2027-01-01', 'mcp-method': 'tools/list' },
      { ...list, params: { _meta: envelope('2027-01-01') } },
    );
    assert.equal(unsupported.status, 400);
    assert.equal(unsupported.body.error.code, -32022);
    assert.deepEqual(unsupported.body.error.data, { supported: [MODERN], requested: '2027-01-01' });
    const unknownMethod = await send(
      { 'mcp-protocol-version': MODERN, 'mcp-method': 'foo/bar' },
      { jsonrpc: '2.0', id: 3, method: 'foo/bar', params: { _meta: envelope(MODERN) } },
    );
    assert.equal(unknownMethod.status, 404);
    assert.equal(unknownMethod.body.error.code, -32601);
    const batch = await send({ 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' }, [list]);
    assert.equal(batch.status, 400);
    assert.equal(batch.body.error.code, -32600);
  });
});

test('2026-07-28: a missing or unknown key is refused with 401 before anything else', async () => {
  const key = testKey('k1', ['*']);
  await withServer([key], async (server) => {
    await assert.rejects(modernClient(server, undefined), (error: unknown) => {
      assert.equal((error as { status?: number }).status, 401);
      return true;
    });
    await assert.rejects(modernClient(server, testKey('k1', ['*'])), (error: unknown) => {
      assert.equal((error as { status?: number }).status, 401);
      return true;
    });
  });
});

test(`DN-PARAM-HEADERS: a 2026-07-28 tools/call must carry the Mcp-Param-* headers its tool declares (x-mcp-header), \
matching the arguments (plain or Base64 sentinel), else HTTP 400 -32020`, async () => {
  const routed = new MemoryToolRouter([
    {
      upstream: 'geo',
      name: 'route',
      inputSchema: {
        type: 'object',
        properties: {
          region: { type: 'string', 'x-mcp-header': 'Region' },
          count: { type: 'integer', 'x-mcp-header': 'Count' },
          note: { type: 'string' },
        },
      },
      handler: (args) => ({ content: [{ type: 'text', text: `routed ${JSON.stringify(args)}` }] }),
    },
  ]);
  const key = testKey('k1', ['geo__route']);
  const server = await startServer(routed, buildConfig([key]));
  const call = (args: Record<string, unknown>, headers: Record<string, string>) =>
    postModern(
      server.url,
      key.secret,
      'tools/call',
      { name: 'geo__route', arguments: args },
      { 'mcp-name': 'geo__route', ...headers },
    );
  const refused = (reply: { status: number; body: unknown }) =>
    reply.status === 400 && (reply.body as { error?: { code: number } }).error?.code === -32020;
  const zurich = `=?base64?${Buffer.from('Zürich').toString('base64')}?=`;
  try {
    assert.equal(
      (await call({ region: 'eu-west', count: 3 }, { 'mcp-param-region': 'eu-west', 'mcp-param-count': '3' })).status,
      200,
    );
    assert.equal(
      (await call({ region: 'Zürich' }, { 'Mcp-Param-Region': zurich })).status,
      200,
      'a Base64 sentinel value is decoded',
    );
    assert.equal(
      (await call({ region: 'eu', count: 42 }, { 'mcp-param-region': '  eu ', 'mcp-param-count': '42.0' })).status,
      200,
      'numbers compare numerically; OWS is stripped',
    );
    assert.equal(
      (await call({ note: 'no declared values' }, { 'mcp-param-region': 'ignored' })).status,
      200,
      'a header without a body value is ignored',
    );
    const missing = await call({ region: 'eu' }, {});
    assert.ok(refused(missing), JSON.stringify(missing.body));
    assert.match(
      (missing.body as unknown as { error: { message: string } }).error.message,
      /Mcp-Param-Region header is absent/,
    );
    assert.ok(refused(await call({ region: 'eu' }, { 'mcp-param-region': 'us' })), 'a mismatch');
    assert.ok(
      refused(await call({ region: 'Hello' }, { 'mcp-param-region': '=?base64?SGVsbG8?=' })),
      'invalid Base64 padding',
    );
    assert.ok(
      refused(await call({ region: 'Hello' }, { 'mcp-param-region': '=?base64?SGVs!!!bG8=?=' })),
      'characters outside the Base64 alphabet',
    );
    assert.equal(
      (await call({ region: '=?base64?SGVsbG8=' }, { 'mcp-param-region': '=?base64?SGVsbG8=' })).status,
      200,
      'without the ?= suffix the value is literal',
    );
    assert.equal(routed.calls.length, 5, 'refused calls never reach the upstream');
  } finally {
    await server.close();
  }
});
