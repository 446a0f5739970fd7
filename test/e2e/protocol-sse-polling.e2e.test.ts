import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UpstreamState } from '../../proto/gen/portcullis/v1/config.ts';
import { buildConfig, sessionKey, startServer, testKey, type RunningServer } from '../support/mcp-server-harness.ts';
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
  server = await startServer(harness.pool, buildConfig([key], [sessionKey('s1')]), { eventStore: { maxConnectionMs: MAX_CONNECTION_MS, retryMs: RETRY_MS } });
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
const RECONNECTION = { initialReconnectionDelay: 30_000, maxReconnectionDelay: 30_000, reconnectionDelayGrowFactor: 1, maxRetries: 2 };

interface Wire {
  readonly fetch: (url: string | URL, init?: RequestInit) => Promise<Response>;
  /** `Last-Event-ID` of each GET, in order. */
  readonly resumes: string[];
  /** `MCP-Protocol-Version` of each request after initialize. */
  readonly versions: Set<string>;
  /** Progress values the gateway put on the wire (every SSE response, read beside the client). */
  readonly wireProgress: number[];
}

/** A fetch for the SDK transports that records what goes over the wire, without changing it. */
function wire(): Wire {
  const recorded: Wire = {
    resumes: [],
    versions: new Set(),
    wireProgress: [],
    fetch: async (url, init) => {
      const headers = new Headers(init?.headers);
      const lastEventId = headers.get('last-event-id');
      if (init?.method === 'GET' && lastEventId !== null) recorded.resumes.push(lastEventId);
      const version = headers.get('mcp-protocol-version');
      if (version !== null) recorded.versions.add(version);
      const response = await fetch(url, init);
      if (response.headers.get('content-type') !== 'text/event-stream' || response.body === null) return response;
      const [mine, theirs] = response.body.tee();
      void readProgress(mine, recorded.wireProgress);
      return new Response(theirs, { status: response.status, statusText: response.statusText, headers: response.headers });
    },
  };
  return recorded;
}

/** Collects the progress values on an SSE body (ends quietly when the connection does). */
async function readProgress(body: ReadableStream<Uint8Array>, into: number[]): Promise<void> {
  let buffer = '';
  try {
    for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const data = buffer.slice(0, end).split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n');
        buffer = buffer.slice(end + 2);
        if (data === '') continue;
        const message = JSON.parse(data) as { method?: string; params?: { progress?: number } };
        if (message.method === 'notifications/progress') into.push(message.params?.progress ?? -1);
      }
    }
  } catch {
    // the client closed the connection
  }
}

/** The stream part (`<node>.<stream>`) of an event id. */
function streamOf(eventId: string): string {
  return eventId.slice(0, eventId.lastIndexOf('_'));
}

/**
 * What both clients must show: the result; every progress step on the wire, in order, and at the
 * client (the SDK clients drop a last progress that arrives in the same read as the result, directly
 * against server-everything too, so the client may miss the last one only); the call's POST stream
 * closed by the node and resumed with GET + Last-Event-ID at least twice; and ~the node's retry
 * between a close and the resume, not the clients' own delays.
 */
function assertPolled(what: string, text: string, seen: number[], recorded: Wire, callStream: string, elapsedMs: number): void {
  assert.equal(text, 'Long running operation completed. Duration: 2.4 seconds, Steps: 4.', `${what}: the result`);
  assert.deepEqual(recorded.wireProgress, [1, 2, 3, 4], `${what}: every progress reached the agent's wire once, in order`);
  assert.ok(seen.length >= 3, `${what}: progress at the client ${JSON.stringify(seen)}`);
  assert.deepEqual(seen, [1, 2, 3, 4].slice(0, seen.length), `${what}: progress at the client in order`);
  const callResumes = recorded.resumes.filter((id) => streamOf(id) === callStream);
  assert.ok(callResumes.length >= 2, `${what}: the call stream was resumed ${callResumes.length} times (${JSON.stringify(recorded.resumes)})`);
  assert.ok(elapsedMs < 2400 + 2000, `${what}: the call took ${elapsedMs} ms, so the client reconnected after the node's retry`);
  assert.deepEqual([...recorded.versions], ['2025-11-25'], `${what}: a 2025-11-25 session`);
}

test('DN-SSE-POLLING DN-PROGRESS: the official v1 client reconnects by itself when the node closes the stream of a long server-everything call, and gets every progress and the result', async () => {
  const recorded = wire();
  const client = new LegacyClient({ name: 'polled-v1', version: '1.0.0' });
  await client.connect(new LegacyTransport(server.url, { requestInit: { headers: { authorization: `Bearer ${key.secret}` } }, fetch: recorded.fetch, reconnectionOptions: RECONNECTION }));
  const polledBefore = server.gateway.polledSseConnections;
  try {
    const seen: number[] = [];
    let callStream: string | undefined;
    const started = Date.now();
    const result = await client.callTool(LONG_CALL, undefined, { onprogress: (p) => void seen.push(p.progress), onresumptiontoken: (id) => void (callStream ??= streamOf(id)) });
    const elapsed = Date.now() - started;
    assert.ok(callStream !== undefined, 'the answer was an SSE stream with event ids');
    const content = (result.content as Array<{ type: string; text?: string }>)[0];
    assertPolled('v1', content?.text ?? '', seen, recorded, callStream, elapsed);
    assert.ok(server.gateway.polledSseConnections - polledBefore >= 3, 'the node closed connections (the call stream, its resumes, the GET stream)');
  } finally {
    await client.close();
  }
});

test('DN-SSE-POLLING DN-PROGRESS: the official v2 client in 2025 mode reconnects by itself the same way', async () => {
  const recorded = wire();
  const client = new ModernClient({ name: 'polled-v2', version: '1.0.0' }, { versionNegotiation: { mode: 'legacy' } });
  await client.connect(new ModernTransport(server.url, { requestInit: { headers: { authorization: `Bearer ${key.secret}` } }, fetch: recorded.fetch, reconnectionOptions: RECONNECTION }));
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
