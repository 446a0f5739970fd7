// Not on startTestEnv: it drives a node's UpstreamPool in this process (PoolHarness), with no control plane.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { WATCHED_RESOURCE_URI } from '../fixtures/conformance-server/server.ts';
import { conformanceFixtureStdioCommand, startConformanceFixtureHttp } from '../support/conformance.ts';
import { buildConfig, startServer, testKey, type RunningServer } from '../support/mcp-server-harness.ts';
import { legacyAgent, modernAgent } from '../support/protocol-agents.ts';
import type { RunningProcess } from '../support/processes.ts';
import { PoolHarness, READY, everythingStdio, httpUpstream, stdioUpstream } from '../support/upstream-pool-harness.ts';
import type { UpstreamConfig } from '../../proto/gen/portcullis/v1/config.ts';
import { eventually } from '../support/eventually.ts';

/**
 * Resource subscriptions through a node to a 2026-07-28 upstream (the conformance fixture, an SDK v2
 * server), which has no `resources/subscribe`: the node holds one `subscriptions/listen` stream to it
 * naming every subscribed URI, and makes it again after the upstream restarts. Agents of both eras
 * subscribe as their revision says (2025: `resources/subscribe`; 2026-07-28: `subscriptions/listen`).
 */

/** The fixture changes its watched resource only when asked (the trigger tool), so every update is caused here. */
const QUIET = { CONFORMANCE_WATCH_INTERVAL_MS: String(60 * 60 * 1000) };
const TRIGGER = 'conf__test_trigger_resource_update';
const key = testKey('k1', ['conf__*']);

interface Node {
  harness: PoolHarness;
  server: RunningServer;
  upstream?: { process: RunningProcess; url: string };
  close(): Promise<void>;
}

async function startNode(transport: 'http' | 'stdio'): Promise<Node> {
  let upstream: { process: RunningProcess; url: string } | undefined;
  let config: UpstreamConfig;
  if (transport === 'http') {
    upstream = await startConformanceFixtureHttp(QUIET);
    config = httpUpstream('conf', upstream.url);
  } else {
    const { command, args } = conformanceFixtureStdioCommand();
    config = stdioUpstream('conf', command, args, {
      env: Object.entries(QUIET).map(([name, value]) => ({ name, value })),
    });
  }
  const harness = PoolHarness.start([config], { healthIntervalMs: 500, healthFailureThreshold: 1 });
  await harness.waitForState('conf', READY, 30_000);
  assert.equal(
    harness.connection('conf').current.protocolVersion,
    '2026-07-28',
    'the fixture is spoken to in 2026-07-28',
  );
  const server = await startServer(harness.pool, buildConfig([key]));
  const node: Node = {
    harness,
    server,
    upstream,
    async close() {
      await server.close();
      await harness.close();
      await node.upstream?.process.stop(); // the restart test replaces it
    },
  };
  return node;
}

for (const transport of ['http', 'stdio'] as const) {
  describe(`resource subscriptions to a 2026-07-28 upstream over ${transport}`, () => {
    const nodes: Node[] = [];
    after(async () => {
      for (const node of nodes) await node.close();
    });

    test(`UP-SUBSCRIBE-2026 DN-RESOURCES-SUBSCRIBE: a 2025 agent subscribes and unsubscribes; the node listens \
upstream for it and relays the updates`, async () => {
      const node = await startNode(transport);
      nodes.push(node);
      const { client } = await legacyAgent(node.server.url, key.secret);
      const updates: Record<string, unknown>[] = [];
      client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params));
      await eventually('the GET stream', () => node.server.gateway.notificationStreamCount === 1);
      await client.subscribeResource({ uri: WATCHED_RESOURCE_URI });
      await client.callTool({ name: TRIGGER, arguments: {} });
      await eventually('the update', () => updates.length === 1);
      assert.deepEqual(
        updates[0],
        { uri: WATCHED_RESOURCE_URI },
        "the gateway's own upstream subscription id is not passed on",
      );

      await client.unsubscribeResource({ uri: WATCHED_RESOURCE_URI });
      await client.callTool({ name: TRIGGER, arguments: {} });
      // An update would travel the same path as the tool result; give it a margin to show up.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(updates.length, 1, 'no update after unsubscribing');
      await client.close();
    });

    test(`UP-SUBSCRIBE-2026: a 2026-07-28 agent's listen stream with resourceSubscriptions gets the upstream's \
updates`, async () => {
      const node = await startNode(transport);
      nodes.push(node);
      const agent = await modernAgent(node.server.url, key.secret);
      const updates: string[] = [];
      agent.setNotificationHandler('notifications/resources/updated', (n) => void updates.push(n.params.uri));
      const subscription = await agent.listen({ resourceSubscriptions: [WATCHED_RESOURCE_URI] });
      assert.deepEqual(subscription.honoredFilter.resourceSubscriptions, [WATCHED_RESOURCE_URI]);
      await agent.callTool({ name: TRIGGER, arguments: {} });
      await eventually('the update', () => updates.length === 1);
      await subscription.close();
      await agent.close();
    });

    test(`UP-SUBSCRIBE-RESTORE: after the upstream restarts, the node subscribes again and updates keep reaching the \
agent`, async () => {
      const node = await startNode(transport);
      nodes.push(node);
      const { client } = await legacyAgent(node.server.url, key.secret);
      const updates: string[] = [];
      client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
      await eventually('the GET stream', () => node.server.gateway.notificationStreamCount === 1);
      await client.subscribeResource({ uri: WATCHED_RESOURCE_URI });

      if (transport === 'stdio') {
        const pid = node.harness.connection('conf').pid;
        assert.ok(pid !== undefined);
        process.kill(pid, 'SIGKILL');
        await eventually(
          'the restarted upstream',
          () => node.harness.connection('conf').pid !== pid && node.harness.state('conf') === READY,
          30_000,
        );
      } else {
        const port = Number(new URL(node.upstream!.url).port);
        await node.upstream!.process.stop();
        node.upstream = await startConformanceFixtureHttp(QUIET, port);
      }
      // The trigger goes to the new upstream instance; its update reaches the agent only if the node subscribed again.
      await eventually(
        'an update from the new upstream',
        async () => {
          await client.callTool({ name: TRIGGER, arguments: {} }).catch(() => undefined);
          await new Promise((r) => setTimeout(r, 200));
          return updates.length > 0;
        },
        20_000,
      );
      await client.close();
    });
  });
}

describe('resource subscriptions to a 2025-era upstream (server-everything over stdio)', () => {
  const everythingKey = testKey('k2', ['everything__*']);
  let harness: PoolHarness | undefined;
  let server: RunningServer | undefined;
  after(async () => {
    await server?.close();
    await harness?.close();
  });

  test(`UP-SUBSCRIBE-RESTORE: after the upstream process is restarted, the node sends resources/subscribe \
again`, async () => {
    harness = PoolHarness.start([everythingStdio('everything')]);
    await harness.waitForState('everything', READY);
    assert.notEqual(harness.connection('everything').current.protocolVersion, '2026-07-28');
    server = await startServer(harness.pool, buildConfig([everythingKey]));
    const { client } = await legacyAgent(server.url, everythingKey.secret);
    const updates: string[] = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
    await eventually('the GET stream', () => server!.gateway.notificationStreamCount === 1);
    const uri = (await client.listResources()).resources[0]!.uri;
    await client.subscribeResource({ uri });

    const pid = harness.connection('everything').pid;
    assert.ok(pid !== undefined);
    process.kill(pid, 'SIGKILL');
    await eventually(
      'the restarted upstream',
      () => harness!.connection('everything').pid !== pid && harness!.state('everything') === READY,
      30_000,
    );
    // server-everything sends an update for every URI the connection is subscribed to as soon as this tool
    // turns its simulated updates on: the fresh process only knows the URI if the node subscribed again.
    await eventually('the restored subscription', () => harness!.connection('everything').current.state === READY);
    await client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} });
    await eventually('an update from the restarted upstream', () => updates.includes(uri), 10_000);
    await client.close();
  });
});
