import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import { buildConfig, startServer, testKey, type RunningServer } from '../support/mcp-server-harness.ts';

const key = testKey('k1', ['*']);
const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const PING = { jsonrpc: '2.0', id: 1, method: 'ping' };

async function call(
  server: RunningServer,
  init: { method?: string; headers?: Record<string, string>; body?: string; path?: string },
) {
  const response = await fetch(new URL(init.path ?? '/mcp', server.url), {
    method: init.method ?? 'POST',
    headers: init.headers,
    body: init.body,
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text === '' ? undefined : JSON.parse(text) };
}

async function withServer(
  fn: (server: RunningServer, tools: MemoryToolRouter) => Promise<void>,
  maxBodyBytes?: number,
): Promise<void> {
  const tools = new MemoryToolRouter([{ upstream: 'up', name: 'echo' }]);
  const server = await startServer(tools, buildConfig([key]), { maxBodyBytes });
  try {
    await fn(server, tools);
  } finally {
    await server.close();
  }
}

test('health, readiness and unknown paths', async () => {
  await withServer(async (server) => {
    assert.deepEqual(await call(server, { method: 'GET', path: '/healthz' }).then((r) => [r.status, r.json]), [
      200,
      { status: 'ok' },
    ]);
    assert.equal((await call(server, { method: 'GET', path: '/readyz' })).status, 200);
    const missing = await call(server, { method: 'GET', path: '/nope' });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('content-type'), 'application/json');
    assert.equal(missing.json.error.code, 'NOT_FOUND');

    server.config = undefined;
    assert.equal((await call(server, { method: 'GET', path: '/readyz' })).status, 503);
    assert.equal((await call(server, { method: 'GET', path: '/healthz' })).status, 200);
    const notReady = await call(server, {
      headers: { ...JSON_HEADERS, authorization: `Bearer ${key.secret}` },
      body: JSON.stringify(PING),
    });
    assert.equal(notReady.status, 503);
    assert.equal(notReady.json.jsonrpc, '2.0');
  });
});

test(`401 for a missing, unknown or malformed key, with a challenge and a JSON-RPC body saying what to \
send`, async () => {
  await withServer(async (server) => {
    for (const headers of [
      {},
      { authorization: 'Bearer pcs_wrong' },
      { 'x-portcullis-key': 'pcs_wrong' },
      { authorization: `Basic ${key.secret}` },
    ] as Record<string, string>[]) {
      const response = await call(server, { headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(PING) });
      assert.equal(response.status, 401, JSON.stringify(headers));
      assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal(response.json.error.code, -32040);
      assert.match(response.json.error.message, /Authorization: Bearer <key>/);
      assert.match(response.json.error.message, /x-portcullis-key/);
    }
    for (const method of ['GET', 'DELETE'])
      assert.equal((await call(server, { method, headers: { accept: 'text/event-stream' } })).status, 401);
  });
});

test('transport refusals: 406 Accept, 415 Content-Type, 413 size, 400 parse and shape errors, 405 method', async () => {
  await withServer(async (server) => {
    const auth = { authorization: `Bearer ${key.secret}` };
    const notAcceptable = await call(server, {
      headers: { ...auth, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(PING),
    });
    assert.equal(notAcceptable.status, 406);
    assert.equal(notAcceptable.json.error.code, -32000);
    const wrongType = await call(server, {
      headers: { ...auth, ...JSON_HEADERS, 'content-type': 'text/plain' },
      body: JSON.stringify(PING),
    });
    assert.equal(wrongType.status, 415);
    assert.match(wrongType.json.error.message, /Content-Type must be application\/json/);
    const charset = await call(server, {
      headers: { ...auth, ...JSON_HEADERS, 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({
        ...PING,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      }),
    });
    assert.equal(charset.status, 200);

    const tooBig = await call(server, {
      headers: { ...auth, ...JSON_HEADERS },
      body: JSON.stringify({ ...PING, params: { pad: 'x'.repeat(2000) } }),
    });
    assert.equal(tooBig.status, 413);
    assert.equal(tooBig.json.error.message, 'Payload Too Large: Request body must not exceed 1024 bytes');

    const streamed = await new Promise<number>((resolve, reject) => {
      const req = request(
        server.url,
        { method: 'POST', headers: { ...auth, ...JSON_HEADERS, 'transfer-encoding': 'chunked' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      for (let i = 0; i < 8; i += 1) req.write('x'.repeat(256));
      req.end();
    });
    assert.equal(streamed, 413, 'a body without Content-Length is cut off at the limit too');

    const malformed = await call(server, {
      headers: { ...auth, ...JSON_HEADERS },
      body: '{"jsonrpc": "2.0", "id": 1, ',
    });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.json.error.code, -32700);
    assert.equal(malformed.json.id, null);
    const notRpc = await call(server, {
      headers: { ...auth, ...JSON_HEADERS },
      body: JSON.stringify({ hello: 'world' }),
    });
    assert.equal(notRpc.status, 400);
    assert.equal(notRpc.json.error.code, -32600);
    const badVersion = await call(server, {
      headers: { ...auth, ...JSON_HEADERS },
      body: JSON.stringify({ ...PING, jsonrpc: '1.0' }),
    });
    assert.equal(badVersion.json.error.code, -32600);
    const emptyBatch = await call(server, { headers: { ...auth, ...JSON_HEADERS }, body: '[]' });
    assert.equal(emptyBatch.json.error.code, -32600);

    const put = await call(server, {
      method: 'PUT',
      headers: { ...auth, ...JSON_HEADERS },
      body: JSON.stringify(PING),
    });
    assert.equal(put.status, 405);
    assert.equal(put.headers.get('allow'), 'GET, POST, DELETE');
    const modernGet = await call(server, {
      method: 'GET',
      headers: { ...auth, accept: 'text/event-stream', 'mcp-protocol-version': '2026-07-28' },
    });
    assert.equal(modernGet.status, 405);
    const getWithoutSse = await call(server, { method: 'GET', headers: { ...auth, accept: 'application/json' } });
    assert.equal(getWithoutSse.status, 406);
  }, 1024);
});

test('the call is aborted when the agent hangs up before the answer', async () => {
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  let aborted!: (reason: unknown) => void;
  const abortedSeen = new Promise<unknown>((resolve) => (aborted = resolve));
  await withServer(async (server, tools) => {
    tools.add({
      upstream: 'slow',
      name: 'wait',
      handler: (_args, options) =>
        new Promise((_resolve, reject) => {
          options.signal?.addEventListener('abort', () => {
            aborted(options.signal?.reason);
            reject(new Error('aborted'));
          });
          started();
        }),
    });
    const meta = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
      'io.modelcontextprotocol/clientCapabilities': {},
    };
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'slow__wait', arguments: {}, _meta: meta },
    });
    const req = request(server.url, {
      method: 'POST',
      headers: {
        ...JSON_HEADERS,
        authorization: `Bearer ${key.secret}`,
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'slow__wait',
        'content-length': Buffer.byteLength(body),
      },
    });
    req.on('error', () => undefined);
    req.end(body);
    await running;
    req.destroy();
    const reason = await Promise.race([
      abortedSeen,
      new Promise((_, reject) => setTimeout(() => reject(new Error('the upstream call was not aborted')), 2000)),
    ]);
    assert.ok(reason instanceof Error);
  });
});

test(`error ids: refusals after the body is parsed echo its id; refusals before it (401, 403, 503) carry id \
null`, async () => {
  await withServer(async (server) => {
    const auth = { authorization: `Bearer ${key.secret}` };
    const noSession = await call(server, {
      headers: { ...JSON_HEADERS, ...auth },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'list-1', method: 'tools/list' }),
    });
    assert.equal(noSession.status, 400);
    assert.equal(noSession.json.id, 'list-1');
    const badSession = await call(server, {
      headers: { ...JSON_HEADERS, ...auth, 'mcp-session-id': 'nope' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
    });
    assert.equal(badSession.status, 404);
    assert.equal(badSession.json.id, 9);
    const unauthenticated = await call(server, {
      headers: JSON_HEADERS,
      body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/list' }),
    });
    assert.equal(unauthenticated.status, 401);
    assert.equal(unauthenticated.json.id, null);
  });
});

test(`DN-INTERNAL-ERROR: a request whose handling throws is answered 500 with a JSON-RPC internal error, and the node \
goes on serving`, async () => {
  await withServer(async (server) => {
    const config = server.config;
    let broken = true;
    Object.defineProperty(server, 'config', {
      get: () => {
        if (broken) throw new Error('a bug');
        return config;
      },
      configurable: true,
    });
    const failed = await call(server, {
      headers: { ...JSON_HEADERS, authorization: `Bearer ${key.secret}` },
      body: JSON.stringify(PING),
    });
    assert.equal(failed.status, 500);
    assert.equal(failed.json.jsonrpc, '2.0');
    assert.equal(failed.json.error.code, -32603);
    assert.equal(failed.json.error.message, 'Internal error');
    broken = false;
    const health = await call(server, { method: 'GET', path: '/healthz' });
    assert.equal(health.status, 200);
  });
});
