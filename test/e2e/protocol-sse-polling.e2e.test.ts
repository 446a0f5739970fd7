// Not on startTestEnv: it drives a node's UpstreamPool in this process (PoolHarness), with no control plane.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UpstreamState } from '../../proto/gen/portcullis/v1/config.ts';
import { buildConfig, startServer, testKey, type RunningServer } from '../support/mcp-server-harness.ts';
import { sseWire, streamOf, type SseWire } from '../support/sse-wire.ts';
import { PoolHarness, everythingStdio } from '../support/upstream-pool-harness.ts';

/**
 * SSE polling (SEP-1699) end to end: a node that closes every SSE connection of 2025-11-25 sessions
 * after 400 ms, in front of real @modelcontextprotocol/server-everything over stdio, and the official
 * v1 and v2 SDK clients, which must reconnect by themselves (GET with Last-Event-ID after the node's
 * `retry`) and get a long call's every progress and its result.
 */
const MAX_CONNECTION_MS = 400;
const RETRY_MS = 50;
const key = testKey('k1', ['everything__*']);
const LONG_CALL = { name: 'everything__trigger-long-running-operation', arguments: { duration: 2.4, steps: 4 } };

let harness: PoolHarness;
let server: RunningServer;

before(async () => {
  harness = PoolHarness.start([everythingStdio('everything')]);
  await harness.waitForState('everything', UpstreamState.UPSTREAM_STATE_READY);
  server = await startServer(harness.pool, buildConfig([key]), {
    eventStore: { maxConnectionMs: MAX_CONNECTION_MS, retryMs: RETRY_MS },
  });
});

after(async () => {
  server?.gateway.server.closeAllConnections();
  await server?.close();
  await harness?.pool.close();
});

/**
 * The clients' own reconnection delays are far longer than the test: a reconnection that follows the
 * node's `retry` (50 ms) is the only one that can finish in time.
 */
const RECONNECTION = {
  initialReconnectionDelay: 30_000,
  maxReconnectionDelay: 30_000,
  reconnectionDelayGrowFactor: 1,
  maxRetries: 2,
};

/**
 * What both clients must show: the result; every progress step on the wire, in order, and at the
 * client (the SDK clients drop a last progress that arrives in the same read as the result, directly
 * against server-everything too, so the client may miss the last one only); the call's POST stream
 * closed by the node and resumed with GET + Last-Event-ID at least twice; and ~the node's retry
 * between a close and the resume, not the clients' own delays.
 */
function assertPolled(
  what: string,
  text: string,
  seen: number[],
  recorded: SseWire,
  callStream: string,
  elapsedMs: number,
): void {
  assert.equal(text, 'Long running operation completed. Duration: 2.4 seconds, Steps: 4.', `${what}: the result`);
  assert.deepEqual(recorded.progress, [1, 2, 3, 4], `${what}: every progress reached the agent's wire once, in order`);
  assert.ok(seen.length >= 3, `${what}: progress at the client ${JSON.stringify(seen)}`);
  assert.deepEqual(seen, [1, 2, 3, 4].slice(0, seen.length), `${what}: progress at the client in order`);
  const callResumes = recorded.resumes.filter((id) => streamOf(id) === callStream);
  assert.ok(
    callResumes.length >= 2,
    `${what}: the call stream was resumed ${callResumes.length} times (${JSON.stringify(recorded.resumes)})`,
  );
  assert.ok(
    elapsedMs < 20_000,
    `${what}: the call took ${elapsedMs} ms, so the client reconnected after the node's retry, not its own 30 s`,
  );
  assert.deepEqual([...recorded.versions], ['2025-11-25'], `${what}: a 2025-11-25 session`);
  assert.ok(
    recorded.retries.length > 0 && recorded.retries.every((r) => r === RETRY_MS),
    `${what}: the node's retry on the wire`,
  );
}

test(`DN-SSE-POLLING DN-PROGRESS: the official v1 client reconnects by itself when the node closes the stream of a \
long server-everything call, and gets every progress and the result`, async () => {
  const recorded = sseWire();
  const client = new LegacyClient({ name: 'polled-v1', version: '1.0.0' });
  await client.connect(
    new LegacyTransport(server.url, {
      requestInit: { headers: { authorization: `Bearer ${key.secret}` } },
      fetch: recorded.fetch,
      reconnectionOptions: RECONNECTION,
    }),
  );
  const polledBefore = server.gateway.polledSseConnections;
  try {
    const seen: number[] = [];
    let callStream: string | undefined;
    const started = Date.now();
    const result = await client.callTool(LONG_CALL, undefined, {
      onprogress: (p) => void seen.push(p.progress),
      onresumptiontoken: (id) => void (callStream ??= streamOf(id)),
    });
    const elapsed = Date.now() - started;
    assert.ok(callStream !== undefined, 'the answer was an SSE stream with event ids');
    const content = (result.content as Array<{ type: string; text?: string }>)[0];
    assertPolled('v1', content?.text ?? '', seen, recorded, callStream, elapsed);
    assert.ok(
      server.gateway.polledSseConnections - polledBefore >= 3,
      'the node closed connections (the call stream, its resumes, the GET stream)',
    );
  } finally {
    await client.close();
  }
});

test('DN-SSE-POLLING DN-PROGRESS: the official v2 client in 2025 mode reconnects by itself the same way', async () => {
  const recorded = sseWire();
  const client = new ModernClient({ name: 'polled-v2', version: '1.0.0' }, { versionNegotiation: { mode: 'legacy' } });
  await client.connect(
    new ModernTransport(server.url, {
      requestInit: { headers: { authorization: `Bearer ${key.secret}` } },
      fetch: recorded.fetch,
      reconnectionOptions: RECONNECTION,
    }),
  );
  try {
    const seen: number[] = [];
    const started = Date.now();
    const result = await client.callTool(LONG_CALL, { onprogress: (p) => void seen.push(p.progress) });
    const elapsed = Date.now() - started;
    // The v2 client reports no resumption tokens for calls: the call's stream is the one resumed most.
    const byStream = new Map<string, number>();
    for (const id of recorded.resumes) byStream.set(streamOf(id), (byStream.get(streamOf(id)) ?? 0) + 1);
    const callStream = [...byStream.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'none';
    const content = (result.content as Array<{ type: string; text?: string }>)[0];
    assertPolled('v2', content?.text ?? '', seen, recorded, callStream, elapsed);
  } finally {
    await client.close();
  }
});
