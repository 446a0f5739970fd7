import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { firstText } from '../support/agents.ts';
import type { DataPlaneProcess } from '../support/gateway.ts';
import { sseWire, streamOf } from '../support/sse-wire.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

/**
 * The SSE flags on a real `portcullis data-plane` process (control plane on the machine's
 * PostgreSQL, server-everything over stdio registered through GraphQL): `--sse-max-stream-seconds`
 * and `--sse-retry-ms` reach the node, and the official v1 client rides a long call through its closes.
 */
let env: TestEnv;
let node: DataPlaneProcess;
let secret: string;

before(async () => {
  env = await startTestEnv({
    nodes: [
      {
        id: 'polling-node',
        args: ['--sse-max-stream-seconds', '1', '--sse-retry-ms', '120', '--sse-resume-window-seconds', '5'],
      },
    ],
    upstreams: [everythingUpstream('ev')],
    keys: [{ name: 'polled', allowedTools: ['ev__*'] }],
  });
  node = env.node('polling-node');
  secret = env.key.secret;
});

after(async () => {
  await env?.dispose();
});

test(`DN-SSE-POLLING: \`portcullis data-plane --sse-max-stream-seconds 1 --sse-retry-ms 120\` closes a long call's \
stream every second; the v1 client resumes after 120 ms and gets every progress and the result`, async () => {
  const wire = sseWire();
  const client = new Client({ name: 'polled-cli', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(node.mcpUrl), {
      requestInit: { headers: { authorization: `Bearer ${secret}` } },
      fetch: wire.fetch,
    }),
  );
  try {
    await eventually("the upstream's tools on the node", async () =>
      (await client.listTools()).tools.some((t) => t.name === 'ev__trigger-long-running-operation'),
    );
    const seen: number[] = [];
    // The answer becomes a stream at the first progress (1 s in): 5 s leave room for at least two closes after it.
    let callStream: string | undefined;
    const result = await client.callTool(
      { name: 'ev__trigger-long-running-operation', arguments: { duration: 5, steps: 5 } },
      undefined,
      {
        onprogress: (p) => void seen.push(p.progress),
        onresumptiontoken: (id) => void (callStream ??= streamOf(id)),
      },
    );
    assert.equal(firstText(result), 'Long running operation completed. Duration: 5 seconds, Steps: 5.');
    assert.deepEqual(wire.progress, [1, 2, 3, 4, 5], 'every progress on the wire, once, in order');
    // The SDK client may drop a last progress read together with the result (directly too): only that one.
    assert.ok(seen.length >= 2, `progress at the client: ${JSON.stringify(seen)}`);
    assert.deepEqual(seen, [1, 2, 3, 4, 5].slice(0, seen.length));
    assert.ok(callStream !== undefined);
    const resumes = wire.resumes.filter((id) => streamOf(id) === callStream).length;
    assert.ok(resumes >= 2, `the call stream was closed and resumed ${resumes} times`);
    assert.ok(
      wire.retries.length > 0 && wire.retries.every((r) => r === 120),
      `--sse-retry-ms on the wire: ${JSON.stringify(wire.retries)}`,
    );
  } finally {
    await client.close();
  }
});
