import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { RpcErrorCode } from '../../data-plane/src/mcp/protocol.ts';
import type { DataPlaneProcess } from '../support/gateway.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

/**
 * Issue 12, faults: a node killed while a call's answer streams. Real processes: the control plane
 * on PostgreSQL, two data-plane nodes with server-everything each, the official SDK v1 client
 * behind a "load balancer" fetch that sends to node A while it answers and to node B after.
 */

let gateway: TestEnv;
let nodeB: DataPlaneProcess | undefined;

before(async () => {
  // One node at a time: two starting at once on a busy machine took longer than a start may.
  gateway = await startTestEnv({
    nodes: ['node-a'],
    upstreams: [everythingUpstream('ev')],
    keys: [{ name: 'agent', allowedTools: ['ev__*'] }],
  });
  nodeB = await gateway.startNode('node-b');
  await gateway.keysReachedNodes();
});

after(async () => {
  await gateway?.dispose();
});

/**
 * Sends each request to node A, or to node B when A refuses the connection (as a load balancer's health check would).
 */
function failoverFetch(a: string, b: string, movedToB: string[]): typeof fetch {
  return async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    try {
      return await fetch(url, init);
    } catch (error) {
      if (!url.startsWith(a)) throw error;
      movedToB.push(`${init?.method ?? 'GET'} ${new Headers(init?.headers).get('last-event-id') ?? ''}`);
      return fetch(b + url.slice(a.length), init);
    }
  };
}

test(`faults: a call whose answer stream started on a node that is then killed fails within seconds on the SDK client \
(StreamLost), not after its own 60 s timeout`, async () => {
  const nodeA = gateway.nodes[0]!;
  const b = nodeB!;
  const moved: string[] = [];
  const client = new Client({ name: 'failover-agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(nodeA.mcpUrl), {
    requestInit: { headers: { authorization: `Bearer ${gateway.key.secret}` } },
    fetch: failoverFetch(`http://127.0.0.1:${nodeA.port}`, `http://127.0.0.1:${b.port}`, moved),
    reconnectionOptions: {
      initialReconnectionDelay: 200,
      maxReconnectionDelay: 1_000,
      reconnectionDelayGrowFactor: 1.5,
      maxRetries: 5,
    },
  });
  await client.connect(transport);
  try {
    await eventually(
      'server-everything is ready on node A',
      async () => (await client.listTools()).tools.some((t) => t.name === 'ev__trigger-long-running-operation'),
      30_000,
    );
    let progressed: (() => void) | undefined;
    const firstProgress = new Promise<void>((resolve) => (progressed = resolve));
    const call = client.callTool(
      { name: 'ev__trigger-long-running-operation', arguments: { duration: 30, steps: 30 } },
      undefined,
      { onprogress: () => progressed?.(), timeout: 60_000 },
    );
    const outcome = call.then(
      () => undefined,
      (error: unknown) => error,
    );
    const early = await Promise.race([
      firstProgress.then(() => undefined),
      outcome.then((e) => e ?? new Error('the call completed')),
    ]);
    assert.equal(early, undefined, `the call ended before its first progress: ${String(early)}`);
    await nodeA.process.kill();
    const killedAt = Date.now();
    const error = await outcome;
    const tookMs = Date.now() - killedAt;
    assert.ok(error instanceof McpError, `the call failed with an MCP error, not ${String(error)}`);
    assert.equal(error.code, RpcErrorCode.StreamLost, error.message);
    assert.match(error.message, /answer to this request is lost/);
    assert.ok(tookMs < 5_000, `the agent learned within ${tookMs} ms`);
    assert.ok(
      moved.some((m) => m.startsWith('GET ') && m.length > 4),
      `the resume (GET with Last-Event-ID) reached node B: ${JSON.stringify(moved)}`,
    );
  } finally {
    await client.close().catch(() => undefined);
  }
});
