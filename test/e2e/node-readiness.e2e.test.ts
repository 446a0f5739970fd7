// Faults ("Tool not found" while a node starts): /readyz turned 200 as soon as the node had a
// snapshot, while its upstreams were still connecting, so a load balancer sent agents to a node
// that answered "tool not found". Readiness now waits for the upstreams (by default).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectModernAgent } from '../support/agents.ts';
import { createTestSchema, type TestSchema } from '../support/database.ts';
import { ControlPlaneProcess } from '../support/gateway.ts';
import { CREATE_KEY, CREATE_UPSTREAM, graphqlOk } from '../support/graphql.ts';
import { EVERYTHING_SERVER, freePort, startCli, type RunningProcess } from '../support/processes.ts';

describe('faults: a starting node is ready when it can serve its upstreams', () => {
  let schema: TestSchema;
  let plane: ControlPlaneProcess;
  let node: RunningProcess | undefined;

  before(async () => {
    schema = await createTestSchema();
    plane = await ControlPlaneProcess.start(schema.url, schema.name);
  });

  after(async () => {
    await Promise.allSettled([node?.stop(), plane?.stop()]);
    await schema?.drop();
  });

  test('/readyz answers 503 (naming what it waits for) until the slow upstream is connected, and its tool is listed the moment it turns 200', async () => {
    // server-everything over stdio, taking 3 s to start: the first snapshot reaches the node long before.
    const command = `sleep 3; exec "${process.execPath}" "${EVERYTHING_SERVER}" stdio`;
    await graphqlOk(plane.graphqlUrl, plane.adminToken, CREATE_UPSTREAM, { input: { name: 'slow', transport: 'STDIO', command: 'sh', args: ['-c', command] } });
    const created = await graphqlOk<{ createVirtualKey: { secret: string } }>(plane.graphqlUrl, plane.adminToken, CREATE_KEY, { input: { name: 'agent', allowedTools: ['slow__echo'] } });

    const port = await freePort();
    node = startCli('data plane', ['data-plane', '--control-plane', plane.grpcAddress, '--node-id', 'node-ready', '--port', String(port), '--log-level', 'warn'], { PORTCULLIS_NODE_TOKEN: plane.nodeToken });
    await node.waitFor(/MCP endpoint:/);
    const reasons = new Set<string>();
    const deadline = Date.now() + 30_000;
    for (;;) {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`);
      const body = (await response.json()) as { status: string; reason?: string };
      if (response.status === 200) break;
      assert.equal(response.status, 503);
      reasons.add(body.reason ?? '');
      assert.ok(Date.now() < deadline, `not ready after 30 s: ${[...reasons].join('; ')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    const agent = await connectModernAgent(`http://127.0.0.1:${port}/mcp`, created.createVirtualKey.secret);
    try {
      const tools = (await agent.listTools()).tools.map((t) => t.name);
      assert.deepEqual(tools, ['slow__echo'], 'the upstream’s tool is there as soon as the node says it is ready');
    } finally {
      await agent.close();
    }
    assert.ok([...reasons].some((r) => /waiting for 1 upstream/.test(r)), `readyz said what it waited for: ${[...reasons].join('; ')}`);
  });
});
