import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import {
  LOOPBACK_HOSTS,
  effectiveAllowedHosts,
  type AllowedHost,
  isLoopbackAddress,
  parseAllowedHosts,
} from '../../data-plane/src/http/host-guard.ts';
import { connectLegacyAgent } from '../support/agents.ts';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import { buildConfig, startServer, testKey, type RunningServer } from '../support/mcp-server-harness.ts';

const key = testKey('k1', ['*']);
const PING = JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' });

/** node:http, since fetch forbids setting Host. */
function raw(
  server: RunningServer,
  path: string,
  method: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.url.port,
        path,
        method,
        headers: { authorization: `Bearer ${key.secret}`, ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            json: text === '' || !(res.headers['content-type'] ?? '').includes('json') ? undefined : JSON.parse(text),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const POST_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

async function withServer(
  allowedHosts: readonly AllowedHost[] | undefined,
  fn: (server: RunningServer) => Promise<void>,
): Promise<void> {
  const server = await startServer(new MemoryToolRouter([{ upstream: 'up', name: 'echo' }]), buildConfig([key]), {
    allowedHosts,
  });
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

test(`DNS rebinding: a foreign Host gets 403 with a JSON-RPC body naming the header and the flag, on /mcp, /sse and \
/messages only`, async () => {
  await withServer(LOOPBACK_HOSTS, async (server) => {
    const evil = { host: 'evil.example' };
    const refused = await raw(server, '/mcp', 'POST', { ...POST_HEADERS, ...evil }, PING);
    assert.equal(refused.status, 403);
    assert.equal(refused.json.jsonrpc, '2.0');
    assert.equal(refused.json.id, null);
    assert.equal(refused.json.error.code, -32042);
    assert.match(refused.json.error.message, /Host header "evil.example"/);
    assert.match(refused.json.error.message, /--allowed-hosts/);
    assert.deepEqual(refused.json.error.data, { header: 'Host' });
    assert.equal((await raw(server, '/sse', 'GET', { ...evil, accept: 'text/event-stream' })).status, 403);
    assert.equal((await raw(server, '/messages?sessionId=x', 'POST', { ...POST_HEADERS, ...evil }, PING)).status, 403);
    assert.equal((await raw(server, '/mcp', 'POST', { ...POST_HEADERS, host: 'evil.example:8080' }, PING)).status, 403);
    for (const path of ['/healthz', '/readyz']) assert.equal((await raw(server, path, 'GET', evil)).status, 200, path);

    // The loopback names pass on any port (IPv6 in brackets); the SDK client (Host 127.0.0.1:<port>) works.
    for (const host of ['localhost', `localhost:${server.url.port}`, '127.0.0.1:1', '[::1]:9999', 'LOCALHOST']) {
      // 400: a 2025 ping needs a session
      assert.equal((await raw(server, '/mcp', 'POST', { ...POST_HEADERS, host }, PING)).status, 400, host);
    }
    const { client } = await connectLegacyAgent(server.url.href, key.secret);
    await client.ping();
    await client.close();
  });
});

test('DNS rebinding: an Origin header, when sent, must name an allowed host', async () => {
  await withServer(LOOPBACK_HOSTS, async (server) => {
    const host = { host: `127.0.0.1:${server.url.port}` };
    const refused = await raw(
      server,
      '/mcp',
      'POST',
      { ...POST_HEADERS, ...host, origin: 'http://evil.example' },
      PING,
    );
    assert.equal(refused.status, 403);
    assert.match(refused.json.error.message, /Origin header "http:\/\/evil.example"/);
    assert.deepEqual(refused.json.error.data, { header: 'Origin' });
    assert.equal((await raw(server, '/mcp', 'POST', { ...POST_HEADERS, ...host, origin: 'null' }, PING)).status, 403);
    for (const origin of ['http://localhost:3000', 'https://127.0.0.1', 'http://[::1]:5173']) {
      assert.equal((await raw(server, '/mcp', 'POST', { ...POST_HEADERS, ...host, origin }, PING)).status, 400, origin);
    }
  });
});

test(`DNS rebinding: an explicit --allowed-hosts list (ports exact when given), and no check without a \
list`, async () => {
  await withServer(parseAllowedHosts('gateway.internal, 127.0.0.1'), async (server) => {
    assert.equal(
      (await raw(server, '/mcp', 'POST', { ...POST_HEADERS, host: 'gateway.internal:443' }, PING)).status,
      400,
    );
    assert.equal((await raw(server, '/mcp', 'POST', { ...POST_HEADERS, host: 'localhost' }, PING)).status, 403);
  });
  await withServer(parseAllowedHosts('gateway.internal:8443'), async (server) => {
    assert.equal(
      (await raw(server, '/mcp', 'POST', { ...POST_HEADERS, host: 'gateway.internal:8443' }, PING)).status,
      400,
    );
    assert.equal(
      (await raw(server, '/mcp', 'POST', { ...POST_HEADERS, host: 'gateway.internal:8444' }, PING)).status,
      403,
    );
    assert.equal(
      (
        await raw(
          server,
          '/mcp',
          'POST',
          { ...POST_HEADERS, host: 'gateway.internal:8443', origin: 'https://gateway.internal:8443' },
          PING,
        )
      ).status,
      400,
    );
    assert.equal(
      (
        await raw(
          server,
          '/mcp',
          'POST',
          { ...POST_HEADERS, host: 'gateway.internal:8443', origin: 'https://gateway.internal' },
          PING,
        )
      ).status,
      403,
    );
  });
  await withServer(undefined, async (server) => {
    assert.equal(
      (
        await raw(
          server,
          '/mcp',
          'POST',
          { ...POST_HEADERS, host: 'evil.example', origin: 'http://evil.example' },
          PING,
        )
      ).status,
      400,
    );
  });
});

test('allowed hosts: parsing, loopback detection and the default by listen address', () => {
  assert.deepEqual(parseAllowedHosts(' Example.com , [::1]:8080,10.0.0.1:80 '), [
    { hostname: 'example.com' },
    { hostname: '[::1]', port: '8080' },
    { hostname: '10.0.0.1', port: '80' },
  ]);
  assert.throws(() => parseAllowedHosts('http://example.com'), /"http:\/\/example.com" is not a host/);
  for (const address of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1'])
    assert.ok(isLoopbackAddress(address), address);
  for (const address of ['0.0.0.0', '::', '10.0.0.1', 'gateway.internal'])
    assert.ok(!isLoopbackAddress(address), address);
  assert.equal(effectiveAllowedHosts('127.0.0.1', undefined), LOOPBACK_HOSTS);
  assert.equal(effectiveAllowedHosts('0.0.0.0', undefined), undefined);
  assert.equal(effectiveAllowedHosts('0.0.0.0', []), undefined);
  assert.deepEqual(effectiveAllowedHosts('0.0.0.0', parseAllowedHosts('a.example')), [{ hostname: 'a.example' }]);
});
