import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectLegacyAgent, connectModernAgent, firstText } from '../support/agents.ts';
import { type ControlPlaneProcess, type DataPlaneProcess, INITIALIZE, accepts, postMcp } from '../support/gateway.ts';
import { CREATE_KEY, CREATE_UPSTREAM, NODES, REVOKE_KEY, graphqlOk } from '../support/graphql.ts';
import { EVERYTHING_SERVER, freePort, startEverythingHttp, type RunningProcess } from '../support/processes.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { eventually } from '../support/eventually.ts';

describe('walking skeleton: control plane on PostgreSQL, two data-plane nodes, stdio and HTTP upstreams', () => {
  let env: TestEnv;
  let controlPlane: ControlPlaneProcess;
  let nodeA: DataPlaneProcess;
  let nodeB: DataPlaneProcess;
  let httpUpstream: { process: RunningProcess; url: string };
  let key: { id: string; secret: string };

  const allowed = ['ev__echo', 'ev__get-sum', 'evh__*'];

  before(async () => {
    // Nodes look for a returning control plane every 500 ms at most (default 5 s): the restart test waits less.
    const reconnect = ['--control-plane-reconnect-max-ms', '500'];
    env = await startTestEnv({
      nodes: [
        { id: 'node-a', args: ['--metrics-listen', `127.0.0.1:${await freePort()}`, ...reconnect] },
        { id: 'node-b', args: reconnect },
      ],
    });
    controlPlane = env.controlPlane!;
    [nodeA, nodeB] = [env.node('node-a'), env.node('node-b')];
    httpUpstream = await startEverythingHttp();
    env.defer(() => httpUpstream.process.stop());
  });

  after(async () => {
    await env?.dispose();
  });

  test('an operator registers a stdio and an HTTP upstream and creates a key with one mutation each', async () => {
    const gql = controlPlane.graphqlUrl;
    const stdio = await graphqlOk<{ createUpstream: { name: string; transport: string } }>(
      gql,
      controlPlane.adminToken,
      CREATE_UPSTREAM,
      {
        input: { name: 'ev', transport: 'STDIO', command: process.execPath, args: [EVERYTHING_SERVER, 'stdio'] },
      },
    );
    assert.equal(stdio.createUpstream.name, 'ev');
    assert.equal(stdio.createUpstream.transport, 'STDIO');
    await graphqlOk(gql, controlPlane.adminToken, CREATE_UPSTREAM, {
      input: { name: 'evh', transport: 'STREAMABLE_HTTP', url: httpUpstream.url },
    });
    const created = await graphqlOk<{
      createVirtualKey: { secret: string; key: { id: string; allowedTools: string[] } };
    }>(gql, controlPlane.adminToken, CREATE_KEY, {
      input: { name: 'agent', allowedTools: allowed },
    });
    assert.match(created.createVirtualKey.secret, /^pcs_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(created.createVirtualKey.key.allowedTools, allowed);
    key = { id: created.createVirtualKey.key.id, secret: created.createVirtualKey.secret };
    await eventually(
      'the key reached both nodes',
      async () => (await accepts(nodeA.mcpUrl, key.secret)) && (await accepts(nodeB.mcpUrl, key.secret)),
      2_000,
    );
  });

  test('a 2026-07-28 agent (SDK v2) sees exactly the allowed tools of both upstreams and calls them', async () => {
    const agent = await connectModernAgent(nodeA.mcpUrl, key.secret);
    try {
      let names: string[] = [];
      await eventually('both upstreams connected on node A', async () => {
        names = (await agent.listTools()).tools.map((t) => t.name);
        return names.includes('ev__echo') && names.some((n) => n.startsWith('evh__'));
      });
      const evh = names.filter((n) => n.startsWith('evh__'));
      assert.deepEqual(names.filter((n) => n.startsWith('ev__')).sort(), ['ev__echo', 'ev__get-sum']);
      assert.ok(
        evh.includes('evh__echo') && evh.includes('evh__get-sum') && evh.length >= 10,
        `all of evh's tools: ${evh.join(', ')}`,
      );
      assert.equal(
        firstText(await agent.callTool({ name: 'ev__echo', arguments: { message: 'through the gate' } })),
        'Echo: through the gate',
      );
      assert.match(firstText(await agent.callTool({ name: 'evh__get-sum', arguments: { a: 2, b: 40 } })), /\b42\b/);
    } finally {
      await agent.close();
    }
  });

  test('a 2025-era agent (SDK v1) lists and calls, and its session continues on another node', async () => {
    const { client, transport } = await connectLegacyAgent(nodeA.mcpUrl, key.secret);
    try {
      const sessionId = transport.sessionId;
      assert.ok(sessionId, 'node A handed out a session id');
      await eventually('tools on node A', async () =>
        (await client.listTools()).tools.some((t) => t.name === 'ev__get-sum'),
      );
      assert.match(firstText(await client.callTool({ name: 'ev__get-sum', arguments: { a: 1, b: 2 } })), /\b3\b/);

      const moved = await connectLegacyAgent(nodeB.mcpUrl, key.secret, sessionId);
      try {
        await eventually('tools on node B', async () =>
          (await moved.client.listTools()).tools.some((t) => t.name === 'ev__echo'),
        );
        assert.equal(
          firstText(await moved.client.callTool({ name: 'ev__echo', arguments: { message: 'on B' } })),
          'Echo: on B',
        );
      } finally {
        await moved.client.close();
      }
    } finally {
      await client.close();
    }
  });

  test(`each node serves Prometheus metrics on its metrics address: tool calls, the time the gateway added, the \
config version`, async () => {
    assert.ok(nodeA.metricsUrl, 'node A printed its metrics address');
    const response = await fetch(nodeA.metricsUrl);
    assert.equal(response.status, 200);
    const text = await response.text();
    const count = Number(
      /portcullis_tool_call_duration_seconds_count\{upstream="ev",outcome="ok"\} (\d+)/.exec(text)?.[1] ?? 0,
    );
    assert.ok(count >= 2, `node A counted the calls through it (${count})`);
    assert.match(text, /portcullis_gateway_overhead_seconds_count\{upstream="ev"\} \d+/);
    assert.match(text, /portcullis_config_version [1-9]\d*/);
    assert.match(text, /portcullis_upstream_state\{upstream="ev",state="ready"\} 1/);
    assert.match(text, /^portcullis_config_age_seconds 0$/m, 'connected: the configuration is current');
    assert.match(text, /^portcullis_control_plane_connected 1$/m);
  });

  test('a tool outside the allow-list is refused exactly like a tool that does not exist', async () => {
    const agent = await connectModernAgent(nodeA.mcpUrl, key.secret);
    try {
      const tools = (await agent.listTools()).tools.map((t) => t.name);
      assert.ok(!tools.includes('ev__get-env'), 'a forbidden tool is not listed');
      const refusal = async (name: string) => {
        const result = await agent.callTool({ name, arguments: {} }).then(
          (value) => ({ ok: true as const, value }),
          (error: { code?: number; message?: string }) => ({
            ok: false as const,
            code: error.code,
            message: error.message?.replaceAll(name, '<tool>'),
          }),
        );
        return result;
      };
      const forbidden = await refusal('ev__get-env');
      const missing = await refusal('ev__no-such-tool');
      assert.equal(forbidden.ok, false);
      assert.deepEqual(forbidden, missing);
    } finally {
      await agent.close();
    }
  });

  test('requests without a key or with an unknown key get HTTP 401', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Bearer pcs_not-a-key' },
      { 'x-portcullis-key': 'pcs_not-a-key' },
    ];
    for (const headers of attempts) {
      const response = await postMcp(nodeA.mcpUrl, INITIALIZE, headers);
      assert.equal(response.status, 401);
      assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer/);
      await response.body?.cancel();
    }
    assert.equal(await accepts(nodeA.mcpUrl, key.secret), true);
  });

  test('both nodes run the newest config version, visible in GraphQL nodes', async () => {
    await eventually('both nodes ACKed the newest version', async () => {
      const { nodes, config } = await graphqlOk<{
        nodes: { id: string; connected: boolean; appliedVersion: string | null }[];
        config: { version: string };
      }>(controlPlane.graphqlUrl, controlPlane.adminToken, NODES);
      const mine = nodes.filter((n) => n.id === 'node-a' || n.id === 'node-b');
      return mine.length === 2 && mine.every((n) => n.connected && n.appliedVersion === config.version);
    });
  });

  test('a revoked key is refused by both nodes within one second', async () => {
    const extra = await graphqlOk<{ createVirtualKey: { secret: string; key: { id: string } } }>(
      controlPlane.graphqlUrl,
      controlPlane.adminToken,
      CREATE_KEY,
      {
        input: { name: 'to-revoke' },
      },
    );
    const secret = extra.createVirtualKey.secret;
    await eventually(
      'the new key reached both nodes',
      async () => (await accepts(nodeA.mcpUrl, secret)) && (await accepts(nodeB.mcpUrl, secret)),
    );
    const revokedAt = Date.now();
    await graphqlOk(controlPlane.graphqlUrl, controlPlane.adminToken, REVOKE_KEY, {
      id: extra.createVirtualKey.key.id,
    });
    await Promise.all(
      [nodeA, nodeB].map((node) =>
        eventually(`${node.nodeId} refuses the revoked key`, async () => !(await accepts(node.mcpUrl, secret)), 1_000),
      ),
    );
    assert.ok(Date.now() - revokedAt < 1_000);
  });

  test('when the control plane goes away the nodes keep serving, and reconnect when it is back', async () => {
    await controlPlane.stop();
    const agent = await connectModernAgent(nodeA.mcpUrl, key.secret);
    try {
      assert.equal(
        firstText(await agent.callTool({ name: 'ev__echo', arguments: { message: 'alone' } })),
        'Echo: alone',
      );
    } finally {
      await agent.close();
    }
    assert.equal(await accepts(nodeB.mcpUrl, key.secret), true);

    await controlPlane.restart();
    const after = await graphqlOk<{ createVirtualKey: { secret: string } }>(
      controlPlane.graphqlUrl,
      controlPlane.adminToken,
      CREATE_KEY,
      { input: { name: 'after-restart' } },
    );
    const secret = after.createVirtualKey.secret;
    await eventually(
      'both nodes reconnected and learned the new key',
      async () => (await accepts(nodeA.mcpUrl, secret)) && (await accepts(nodeB.mcpUrl, secret)),
      15_000,
    );
  });
});
