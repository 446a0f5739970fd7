/**
 * A node whose audit spool fills while the control plane is away applies its configured choice:
 * `refuse` answers new calls with JSON-RPC -32048 (and says so in /metrics) until the control plane
 * is back and takes the backlog; `serve` keeps answering and counts the records lost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectLegacyAgent } from '../support/agents.ts';
import { everythingUpstream, startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

const SPOOL_BYTES = 8192;

async function metric(metricsUrl: string, name: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
}

describe('a full audit spool', () => {
  let env: TestEnv;

  before(async () => {
    env = await startTestEnv({
      schemaPrefix: 'audit_full',
      upstreams: [everythingUpstream('ev')],
      keys: [{ name: 'k' }],
    });
    await env.startNode({
      id: 'refusing',
      args: ['--audit-spool-max-bytes', String(SPOOL_BYTES), '--metrics-listen', '127.0.0.1:0'],
    });
    await env.startNode({
      id: 'serving',
      args: [
        '--audit-spool-max-bytes',
        String(SPOOL_BYTES),
        '--audit-when-full',
        'serve',
        '--metrics-listen',
        '127.0.0.1:0',
      ],
    });
    await env.keysReachedNodes();
  });
  after(() => env?.dispose());

  it('refuses calls with -32048 while full, and serves again once the control plane took the backlog', async () => {
    const node = env.node('refusing');
    const { client } = await connectLegacyAgent(node.mcpUrl, env.key.secret);
    try {
      await env.controlPlane!.stop();
      let refusal: { code?: number; message: string } | undefined;
      for (let i = 0; i < 500 && refusal === undefined; i++) {
        await client
          .callTool({ name: 'ev__echo', arguments: { message: `fill-${i}-${'x'.repeat(200)}` } })
          .catch((error: { code?: number; message: string }) => (refusal = error));
      }
      // HTTP 503 (a load balancer may send the agent elsewhere) with the JSON-RPC error as its body.
      assert.match(String(refusal?.message), /"code":-32048/);
      assert.match(refusal!.message, /audit spool is full/);
      assert.equal(await metric(node.metricsUrl!, 'portcullis_audit_spool_full'), 1);
      assert.ok((await metric(node.metricsUrl!, 'portcullis_audit_spool_bytes')) >= SPOOL_BYTES);
      assert.ok((await metric(node.metricsUrl!, 'portcullis_audit_backlog_records')) > 0);

      await env.controlPlane!.restart();
      await eventually(
        'the backlog is shipped',
        async () => {
          return (await metric(node.metricsUrl!, 'portcullis_audit_backlog_records')) === 0;
        },
        30_000,
      );
      const result = await client.callTool({ name: 'ev__echo', arguments: { message: 'after' } });
      assert.equal(result.isError, undefined);
      assert.equal(await metric(node.metricsUrl!, 'portcullis_audit_records_dropped_total'), 0);
    } finally {
      await client.close();
    }
  });

  it('keeps serving while full when set to serve, counting the records lost', async () => {
    const node = env.node('serving');
    const { client } = await connectLegacyAgent(node.mcpUrl, env.key.secret);
    try {
      await env.controlPlane!.stop();
      for (let i = 0; i < 120; i++) {
        const result = await client.callTool({ name: 'ev__echo', arguments: { message: `s-${i}-${'y'.repeat(200)}` } });
        assert.equal(result.isError, undefined);
      }
      assert.equal(await metric(node.metricsUrl!, 'portcullis_audit_spool_full'), 1);
      assert.ok((await metric(node.metricsUrl!, 'portcullis_audit_records_dropped_total')) > 0);
    } finally {
      await client.close();
      await env.controlPlane!.restart();
    }
  });
});
