// Faults (staleness in GraphQL): `nodes` now says how long each node may have gone without
// configuration changes, and replicas mark their connected nodes as seen, so a node whose replica
// died silently does not look current for ever.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startControlPlane } from '../../control-plane/src/index.ts';
import { useTestEnv, type TestEnv } from '../support/test-env.ts';
import { TestNode, testLogger } from './control-plane-harness.ts';
import { eventually } from '../support/eventually.ts';

interface NodeRow {
  id: string;
  connected: boolean;
  appliedVersion: string | null;
  lastSeenAt: string;
  configAgeSeconds: number;
}

describe('GraphQL nodes: lastSeenAt and configAgeSeconds', () => {
  let env: TestEnv;

  useTestEnv(
    {
      schemaPrefix: 'staleness',
      controlPlane: 'in-process',
      overrides: { nodeHeartbeatIntervalMs: 100 },
    },
    (started) => (env = started),
  );

  const node = async (id: string) =>
    (
      await env.gqlOk<{ nodes: NodeRow[] }>('{ nodes { id connected appliedVersion lastSeenAt configAgeSeconds } }')
    ).nodes.find((n) => n.id === id);

  test('a connected, current node is 0 s old and seen every heartbeat; once gone, its age grows', async () => {
    const stream = new TestNode(env.grpcAddress, env.nodeToken);
    try {
      stream.hello('node-stale');
      const snapshot = await stream.snapshot();
      stream.ack(snapshot.version);
      const current = await eventually('the ACK is stored', async () => {
        const row = await node('node-stale');
        return row?.appliedVersion === snapshot.version ? row : undefined;
      });
      assert.equal(current.configAgeSeconds, 0);
      // No message from the node since its ACK, yet the replica keeps marking it seen.
      await eventually(
        'the heartbeat moves lastSeenAt on',
        async () => Date.parse((await node('node-stale'))!.lastSeenAt) > Date.parse(current.lastSeenAt) + 150,
        5_000,
      );
      assert.equal((await node('node-stale'))!.configAgeSeconds, 0);
    } finally {
      stream.close();
    }
    await eventually('the node is marked disconnected', async () => (await node('node-stale'))?.connected === false);
    await eventually(
      'its configuration ages',
      async () => ((await node('node-stale'))?.configAgeSeconds ?? 0) >= 1,
      5_000,
    );
  });

  test('a control plane without a node token needs nodes authenticated by certificate', async () => {
    await assert.rejects(
      startControlPlane({
        dataDir: '/nonexistent',
        graphqlHost: '127.0.0.1',
        graphqlPort: 0,
        grpcHost: '127.0.0.1',
        grpcPort: 0,
        logger: testLogger(),
      }),
      /nodeToken: is required unless nodes are authenticated by client certificate/,
    );
  });
});
