// Faults ("Tool not found" while a node starts): /readyz turned 200 as soon as the node had a
// snapshot, while its upstreams were still connecting, so a load balancer sent agents to a node
// that answered "tool not found". Readiness now waits for the upstreams (by default).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectModernAgent } from '../support/agents.ts';
import { EVERYTHING_SERVER, freePort, startCli } from '../support/processes.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

// The node is started by hand, not by the environment: the test watches /readyz from its first moment.
describe('faults: a starting node is ready when it can serve its upstreams', () => {
  let env: TestEnv;

  before(async () => {
    // server-everything over stdio, taking 3 s to start: the first snapshot reaches the node long before.
    const command = `sleep 3; exec "${process.execPath}" "${EVERYTHING_SERVER}" stdio`;
    env = await startTestEnv({
      upstreams: [{ name: 'slow', transport: 'STDIO', command: 'sh', args: ['-c', command] }],
      keys: [{ name: 'agent', allowedTools: ['slow__echo'] }],
    });
  });

  after(async () => {
    await env?.dispose();
  });

  test(`/readyz answers 503 (naming what it waits for) until the slow upstream is connected, and its tool is listed \
the moment it turns 200`, async () => {
    const port = await freePort();
    const node = startCli(
      'data plane',
      [
        'data-plane',
        '--control-plane',
        env.grpcAddress,
        '--node-id',
        'node-ready',
        '--port',
        String(port),
        '--log-level',
        'warn',
      ],
      { PORTCULLIS_NODE_TOKEN: env.nodeToken },
    );
    env.defer(() => node.stop());
    await node.waitFor(/MCP endpoint:/);
    const reasons = new Set<string>();
    await eventually(
      '/readyz to answer 200',
      async () => {
        const response = await fetch(`http://127.0.0.1:${port}/readyz`);
        const body = (await response.json()) as { status: string; reason?: string };
        if (response.status === 200) return true;
        assert.equal(response.status, 503);
        reasons.add(body.reason ?? '');
        return false;
      },
      30_000,
    );
    const agent = await connectModernAgent(`http://127.0.0.1:${port}/mcp`, env.key.secret);
    try {
      const tools = (await agent.listTools()).tools.map((t) => t.name);
      assert.deepEqual(tools, ['slow__echo'], 'the upstream’s tool is there as soon as the node says it is ready');
    } finally {
      await agent.close();
    }
    assert.ok(
      [...reasons].some((r) => /waiting for 1 upstream/.test(r)),
      `readyz said what it waited for: ${[...reasons].join('; ')}`,
    );
  });
});
