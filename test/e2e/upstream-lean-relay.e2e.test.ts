// Not on startTestEnv: it drives a node's UpstreamPool in this process (PoolHarness), with no control plane.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { PortcullisError } from '../../common/src/index.ts';
import { UpstreamErrorCode } from '../../data-plane/src/upstream/upstream-errors.ts';
import { REPO_ROOT } from '../support/processes.ts';
import {
  PoolScope,
  READY,
  everythingStdio,
  firstText,
  httpUpstream,
  stdioUpstream,
} from '../support/upstream-pool-harness.ts';
import { EXOTIC_RESULT } from '../fixtures/raw-stdio-upstream.ts';

/**
 * The lean relay (data-plane/src/upstream/lean-relay.ts): relayed requests bypass the SDK client's
 * Protocol, so what the SDK did for them is checked here against hand-written servers that do what
 * SDK servers never do. Progress, cancellation, server requests, timeouts and session re-init over
 * the lean path are covered by upstream-relay and upstream-resilience.
 */

const RAW_STDIO = resolve(REPO_ROOT, 'test/fixtures/raw-stdio-upstream.ts');
/** The fixture is TypeScript, run through tsx as the other fixtures are. */
const RAW_STDIO_ARGS = ['--import', import.meta.resolve('tsx'), RAW_STDIO, 'serve'];

interface RawHttp {
  url: string;
  /** Every JSON-RPC request POSTed to /mcp, with its headers. */
  requests: { method: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) text += String(chunk);
  return text;
}

/**
 * A hand-written 2025-era Streamable HTTP server (JSON answers, session `s-1`). `POST /old` is
 * redirected (307) to `/mcp`. Tools: `good` answers; `vanish` opens an SSE answer and ends it
 * without a response; `reset-once` drops the connection under its first call (as a server closing
 * a kept-alive connection at that instant does) and answers the next; `reset-always` drops it every time.
 */
async function startRawHttp(): Promise<RawHttp> {
  const requests: RawHttp['requests'] = [];
  let resets = 0;
  const server: Server = createServer((req, res) => {
    void (async () => {
      if (req.url === '/old') {
        await body(req);
        res.writeHead(307, { location: '/mcp' }).end();
        return;
      }
      if (req.method !== 'POST') {
        res.writeHead(405).end();
        return;
      }
      const message = JSON.parse(await body(req)) as { id?: number; method: string; params?: { name?: string } };
      if (message.id === undefined) {
        res.writeHead(202).end();
        return;
      }
      requests.push({ method: message.method, headers: req.headers });
      const json = (reply: Record<string, unknown>, headers: Record<string, string> = {}) =>
        res
          .writeHead(200, { 'content-type': 'application/json', ...headers })
          .end(JSON.stringify({ jsonrpc: '2.0', id: message.id, ...reply }));
      switch (message.method) {
        case 'initialize':
          return json(
            {
              result: {
                protocolVersion: '2025-06-18',
                capabilities: { tools: {} },
                serverInfo: { name: 'raw-http', version: '1.0.0' },
              },
            },
            { 'mcp-session-id': 's-1' },
          );
        case 'tools/list':
          return json({
            result: {
              tools: ['good', 'vanish', 'reset-once', 'reset-always'].map((name) => ({
                name,
                inputSchema: { type: 'object' },
              })),
            },
          });
        case 'ping':
          return json({ result: {} });
        case 'tools/call':
          if (message.params?.name === 'vanish') {
            res.writeHead(200, { 'content-type': 'text/event-stream' }).end();
            return;
          }
          if (message.params?.name === 'reset-always' || (message.params?.name === 'reset-once' && resets++ === 0)) {
            req.socket.resetAndDestroy();
            return;
          }
          return json({ result: { content: [{ type: 'text', text: 'good' }] } });
        default:
          return json({ error: { code: -32601, message: 'Method not found' } });
      }
    })();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    requests,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

describe('upstream lean relay: what the SDK client did for relayed requests, kept', () => {
  const scope = new PoolScope();
  const { cleanups, pool } = scope;

  after(() => scope.close());

  async function rawHttp(): Promise<RawHttp> {
    const started = await startRawHttp();
    cleanups.push(() => started.close());
    return started;
  }

  test(`UP-RELAY-UNCHANGED: a result with fields and content types no schema knows reaches the caller exactly as the \
upstream sent it`, async () => {
    const h = pool([stdioUpstream('raw', process.execPath, RAW_STDIO_ARGS)]);
    await h.waitForState('raw', READY);
    const result = await h.pool.request('raw', { method: 'tools/call', params: { name: 'exotic', arguments: {} } });
    assert.deepEqual(result, EXOTIC_RESULT);
  });

  test(`UP-RELAY-MALFORMED: a response whose result is not an object fails the call at once as an upstream error \
naming the upstream (not a timeout)`, async () => {
    const h = pool([stdioUpstream('raw', process.execPath, RAW_STDIO_ARGS, { callTimeoutMs: 10_000 })]);
    await h.waitForState('raw', READY);
    await assert.rejects(
      h.pool.request('raw', { method: 'tools/call', params: { name: 'malformed', arguments: {} } }),
      (e: PortcullisError) =>
        e.code === UpstreamErrorCode.ERROR && /"raw"/.test(e.message) && /result is not an object/.test(e.message),
    );
    // The connection is still good for the next call.
    const next = await h.pool.request('raw', { method: 'tools/call', params: { name: 'exotic', arguments: {} } });
    assert.equal(firstText(next), 'ok');
  });

  test(`UP-HTTP-HEADERS: a relayed request carries the session id and the negotiated protocol version, over one \
kept-alive connection`, async () => {
    const server = await rawHttp();
    const h = pool([httpUpstream('raw', server.url)]);
    await h.waitForState('raw', READY);
    for (let i = 0; i < 3; i++)
      assert.equal(
        firstText(await h.pool.request('raw', { method: 'tools/call', params: { name: 'good', arguments: {} } })),
        'good',
      );
    const calls = server.requests.filter((r) => r.method === 'tools/call');
    assert.equal(calls.length, 3);
    for (const call of calls) {
      assert.equal(call.headers['mcp-session-id'], 's-1');
      assert.equal(call.headers['mcp-protocol-version'], '2025-06-18');
      assert.match(String(call.headers['accept']), /application\/json/);
      assert.match(String(call.headers['accept']), /text\/event-stream/);
      assert.equal(call.headers['connection'], 'keep-alive');
    }
  });

  test(`UP-RELAY-STREAM-END: an HTTP answer stream that ends without a response fails the call at once as unavailable \
(not a timeout)`, async () => {
    const server = await rawHttp();
    const h = pool([httpUpstream('raw', server.url, { callTimeoutMs: 10_000 })]);
    await h.waitForState('raw', READY);
    await assert.rejects(
      h.pool.request('raw', { method: 'tools/call', params: { name: 'vanish', arguments: {} } }),
      (e: PortcullisError) =>
        e.code === UpstreamErrorCode.UNAVAILABLE &&
        /"raw"/.test(e.message) &&
        /closed the connection before answering tools\/call/.test(e.message),
    );
  });

  test(`UP-HTTP-RESET-RETRY: a relayed POST whose connection is dropped before any answer is sent once more, on a new \
connection, and answered`, async () => {
    const server = await rawHttp();
    const h = pool([httpUpstream('raw', server.url)]);
    await h.waitForState('raw', READY);
    assert.equal(
      firstText(await h.pool.request('raw', { method: 'tools/call', params: { name: 'good', arguments: {} } })),
      'good',
    );
    assert.equal(
      firstText(await h.pool.request('raw', { method: 'tools/call', params: { name: 'reset-once', arguments: {} } })),
      'good',
    );
    assert.equal(server.requests.filter((r) => r.method === 'tools/call').length, 3);
  });

  test(`UP-HTTP-RESET-ONCE: a POST dropped again on its second attempt fails the call as unavailable, sent no third \
time`, async () => {
    const server = await rawHttp();
    const h = pool([httpUpstream('raw', server.url, { callTimeoutMs: 10_000 })]);
    await h.waitForState('raw', READY);
    await assert.rejects(
      h.pool.request('raw', { method: 'tools/call', params: { name: 'reset-always', arguments: {} } }),
      (e: PortcullisError) => e.code === UpstreamErrorCode.UNAVAILABLE && /"raw"/.test(e.message),
    );
    assert.equal(server.requests.filter((r) => r.method === 'tools/call').length, 2);
  });

  test(`UP-HTTP-REDIRECT: an upstream whose endpoint redirects (307, same origin) is still relayed to, through the \
SDK transport that follows it`, async () => {
    const server = await rawHttp();
    const h = pool([httpUpstream('moved', server.url.replace(/\/mcp$/, '/old'))]);
    await h.waitForState('moved', READY);
    for (let i = 0; i < 2; i++)
      assert.equal(
        firstText(await h.pool.request('moved', { method: 'tools/call', params: { name: 'good', arguments: {} } })),
        'good',
      );
  });

  test('UP-RELAY-CONCURRENT: many calls in flight on one stdio upstream each get their own answer', async () => {
    const h = pool([everythingStdio('ev')]);
    await h.waitForState('ev', READY);
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        h.pool.request('ev', { method: 'tools/call', params: { name: 'echo', arguments: { message: `m${i}` } } }),
      ),
    );
    assert.deepEqual(
      results.map((r) => firstText(r)),
      Array.from({ length: 64 }, (_, i) => `Echo: m${i}`),
    );
  });
});
