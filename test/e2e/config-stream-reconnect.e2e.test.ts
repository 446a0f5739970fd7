// Not on startTestEnv: it kills, restarts and fails over control planes (processes and replicas) mid-test.
// Faults: nodes stayed cut off for up to two minutes after a control-plane outage (grpc-js's default
// reconnect backoff grows to 120 s), had one control-plane address, and nobody could see how stale
// their configuration was. Real processes on real PostgreSQL: a control plane killed and restarted,
// a key revoked meanwhile on another replica, a node failing over between two replicas.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startOnSchema, gqlOk } from './control-plane-harness.ts';
import { createTestSchema, type TestSchema } from '../support/database.ts';
import { ControlPlaneProcess, DataPlaneProcess, accepts } from '../support/gateway.ts';
import { CREATE_KEY, REVOKE_KEY, graphqlOk } from '../support/graphql.ts';
import { freePort } from '../support/processes.ts';
import { eventually } from '../support/eventually.ts';

/** The node's backoff bound: a control plane that is back is found within 2 s. */
const BACKOFF = ['--control-plane-reconnect-min-ms', '100', '--control-plane-reconnect-max-ms', '2000'];

async function createKey(plane: ControlPlaneProcess, name: string): Promise<{ id: string; secret: string }> {
  const created = await graphqlOk<{ createVirtualKey: { secret: string; key: { id: string } } }>(
    plane.graphqlUrl,
    plane.adminToken,
    CREATE_KEY,
    { input: { name } },
  );
  return { id: created.createVirtualKey.key.id, secret: created.createVirtualKey.secret };
}

async function scrape(url: string): Promise<{ age: number; connected: number }> {
  const text = await (await fetch(url)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { age: value('portcullis_config_age_seconds'), connected: value('portcullis_control_plane_connected') };
}

const readyz = async (node: DataPlaneProcess) => (await fetch(`http://127.0.0.1:${node.port}/readyz`)).status;

describe('faults: a node after a control-plane outage, and between replicas', () => {
  let schema: TestSchema;
  const running: Array<{ stop(): Promise<unknown> }> = [];

  before(async () => {
    schema = await createTestSchema();
  });

  after(async () => {
    await Promise.allSettled(running.reverse().map((p) => p.stop()));
    await schema?.drop();
  });

  test(`after a long outage the node reconnects within its bounded backoff and refuses a key revoked meanwhile; its \
staleness shows in /metrics, /readyz and GraphQL`, async () => {
    const plane = await ControlPlaneProcess.start(schema.url, schema.name);
    running.push(plane);
    const metricsPort = await freePort();
    const node = await DataPlaneProcess.start(plane, 'node-outage', [
      ...BACKOFF,
      '--metrics-listen',
      `127.0.0.1:${metricsPort}`,
      '--max-config-age-seconds',
      '2',
    ]);
    running.push(node);
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    const key = await createKey(plane, 'revoked-during-outage');
    await eventually('the key reached the node', () => accepts(node.mcpUrl, key.secret));
    assert.deepEqual(await scrape(metricsUrl), { age: 0, connected: 1 });

    await plane.process!.kill();
    await eventually('the node notices', async () => (await scrape(metricsUrl)).connected === 0);
    await eventually(
      '/readyz turns 503 past --max-config-age-seconds',
      async () => (await readyz(node)) === 503,
      10_000,
    );
    assert.ok((await scrape(metricsUrl)).age >= 2);

    // Meanwhile another replica (in this process) revokes the key; the cut-off node cannot know.
    const replica = await startOnSchema(schema, { adminToken: plane.adminToken });
    try {
      await gqlOk(replica, REVOKE_KEY, { id: key.id }, plane.adminToken);
      const { nodes } = await gqlOk<{ nodes: Array<{ id: string; configAgeSeconds: number }> }>(
        replica,
        '{ nodes { id configAgeSeconds } }',
        {},
        plane.adminToken,
      );
      assert.ok(
        (nodes.find((n) => n.id === 'node-outage')?.configAgeSeconds ?? 0) >= 1,
        'GraphQL shows the node behind',
      );
    } finally {
      await replica.close();
    }
    assert.equal(await accepts(node.mcpUrl, key.secret), true, 'still serving its last snapshot');
    // Past several backoff steps. With grpc-js's default (1 s x 1.6, jitter 20%) the channel tries at
    // about 26 and 43 s, so a control plane back at about 30 s would be found 10-13 s late.
    await eventually(
      'an outage of 27 s, as the node counts it',
      async () => (await scrape(metricsUrl)).age >= 27,
      60_000,
    );

    await plane.restart();
    const back = Date.now();
    await eventually('the node refuses the revoked key', async () => !(await accepts(node.mcpUrl, key.secret)), 6_000);
    const reconnectMs = Date.now() - back;
    assert.equal(await readyz(node), 200);
    assert.deepEqual(await scrape(metricsUrl), { age: 0, connected: 1 });
    // The node's ACK of the new snapshot reaches GraphQL through the control plane's write-behind: moments later.
    type Nodes = { nodes: Array<{ id: string; connected: boolean; configAgeSeconds: number }> };
    let shown: Nodes['nodes'][number] | undefined;
    await eventually(
      'GraphQL shows the node current again',
      async () => {
        const { nodes } = await graphqlOk<Nodes>(
          plane.graphqlUrl,
          plane.adminToken,
          '{ nodes { id connected configAgeSeconds } }',
        );
        shown = nodes.find((n) => n.id === 'node-outage');
        return shown?.configAgeSeconds === 0;
      },
      5_000,
    ).catch(() => undefined);
    assert.deepEqual(shown, { id: 'node-outage', connected: true, configAgeSeconds: 0 });
    process.stdout.write(
      `# reconnected and applied the revocation ${reconnectMs} ms after the control plane was back\n`,
    );
  });

  test('a node given two replicas fails over to the second when the first dies', async () => {
    const first = await ControlPlaneProcess.start(schema.url, schema.name);
    running.push(first);
    const second = await ControlPlaneProcess.start(schema.url, schema.name, {
      env: { PORTCULLIS_NODE_TOKEN: first.nodeToken },
    });
    running.push(second);
    const node = await DataPlaneProcess.start(first, 'node-failover', [
      ...BACKOFF,
      '--control-plane',
      `${first.grpcAddress},${second.grpcAddress}`,
    ]);
    running.push(node);
    const key = await createKey(first, 'revoked-on-second');
    await eventually('the key reached the node', () => accepts(node.mcpUrl, key.secret));

    await first.process!.kill();
    await graphqlOk(second.graphqlUrl, second.adminToken, REVOKE_KEY, { id: key.id });
    const msSince = Date.now();
    await eventually(
      'the node, now on the second replica, refuses the key',
      async () => !(await accepts(node.mcpUrl, key.secret)),
      6_000,
    );
    const ms = Date.now() - msSince;
    const { nodes } = await graphqlOk<{ nodes: Array<{ id: string; connected: boolean; configAgeSeconds: number }> }>(
      second.graphqlUrl,
      second.adminToken,
      '{ nodes { id connected configAgeSeconds } }',
    );
    assert.deepEqual(
      nodes.find((n) => n.id === 'node-failover'),
      { id: 'node-failover', connected: true, configAgeSeconds: 0 },
    );
    assert.match(
      node.process.log,
      new RegExp(`"next":"${second.grpcAddress.replace(/[.]/g, '\\.')}"`),
      'the node moved to the second address',
    );
    process.stdout.write(`# failed over and applied the revocation in ${ms} ms\n`);
  });
});
