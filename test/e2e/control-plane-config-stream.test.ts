// On startTestEnv; the port-in-use and second-replica tests start more control planes on its schema by hand.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { after, afterEach, before, describe, it } from 'node:test';
import type { ControlPlane } from '../../control-plane/src/index.ts';
import { UpstreamReport, Transport, UpstreamState } from '../../proto/gen/portcullis/v1/config.ts';
import type { TestSchema } from '../support/database.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { NODE_TOKEN, TestNode, gqlOk, startOnSchema } from './control-plane-harness.ts';
import { eventually } from '../support/eventually.ts';

const CREATE_UPSTREAM = `mutation ($input: CreateUpstreamInput!) { createUpstream(input: $input) { id name } }`;
const CREATE_KEY =
  `mutation ($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { secret key { ` + `id } } }`;

describe('config stream (gRPC)', () => {
  let schema: TestSchema;
  let plane: ControlPlane;
  const nodes: TestNode[] = [];
  const connect = (token = NODE_TOKEN, target: ControlPlane = plane) => {
    const node = new TestNode(target.grpcAddress, token);
    nodes.push(node);
    return node;
  };
  const nodeRow = async (id: string) =>
    (
      await gqlOk(
        plane,
        '{ nodes { id connected appliedVersion lastError mcpUrl softwareVersion connectedAt lastSeenAt } }',
      )
    ).nodes.find((n: { id: string }) => n.id === id);

  let env: TestEnv | undefined;
  before(async () => {
    env = await startTestEnv({ schemaPrefix: 'stream', controlPlane: 'in-process' });
    ({ schema } = env);
    plane = env.plane!;
  });
  afterEach(() => {
    for (const node of nodes.splice(0)) node.close();
  });
  after(async () => {
    await env?.dispose();
  });

  it('refuses a wrong or missing node token with UNAUTHENTICATED', async () => {
    for (const token of ['wrong-token', '', `${NODE_TOKEN}0`]) {
      const node = connect(token);
      node.hello('intruder');
      const ended = await node.ended;
      assert.equal(ended.code, status.UNAUTHENTICATED, ended.details);
      assert.match(ended.details, /node token/);
    }
    assert.equal(await nodeRow('intruder'), undefined);
  });

  it('refuses a stream whose first message is not hello', async () => {
    const node = connect();
    node.ack('1');
    const ended = await node.ended;
    assert.equal(ended.code, status.INVALID_ARGUMENT);
    assert.match(ended.details, /first message on a stream must be hello/);
  });

  it('refuses an invalid hello naming the field', async () => {
    const node = connect();
    node.hello('bad node id!');
    const ended = await node.ended;
    assert.equal(ended.code, status.INVALID_ARGUMENT);
    assert.match(ended.details, /^hello\.nodeId: /);
  });

  it('sends the current snapshot on hello and pushes each change within milliseconds', async () => {
    const node = connect();
    node.hello('node-a', { mcpUrl: 'http://10.0.0.1:8080/mcp', softwareVersion: '0.1.0' });
    const first = await node.snapshot();
    assert.match(first.version, /^\d+$/);
    assert.ok(
      first.sessionKeys.length >= 1 && first.sessionKeys[0]!.secret.length === 32,
      'a 32-byte session signing key is included',
    );
    const row = await eventually(
      'node-a recorded as connected',
      async () => (await nodeRow('node-a'))?.connected && (await nodeRow('node-a')),
    );
    assert.equal(row.mcpUrl, 'http://10.0.0.1:8080/mcp');
    assert.equal(row.softwareVersion, '0.1.0');
    assert.ok(row.connectedAt);

    const started = performance.now();
    const upstream = (
      await gqlOk(plane, CREATE_UPSTREAM, {
        input: {
          name: 'pushme',
          transport: 'STDIO',
          command: 'node',
          args: ['server.js'],
          env: [{ name: 'TOKEN', value: 't0k' }],
        },
      })
    ).createUpstream;
    const pushed = await node.snapshot((s) => s.upstreams.some((u) => u.id === upstream.id), 2000);
    const elapsed = performance.now() - started;
    assert.ok(BigInt(pushed.version) > BigInt(first.version));
    const config = pushed.upstreams.find((u) => u.id === upstream.id)!;
    assert.equal(config.transport, Transport.TRANSPORT_STDIO);
    assert.deepEqual(config.args, ['server.js']);
    assert.deepEqual(config.env, [{ name: 'TOKEN', value: 't0k' }]);
    assert.match(config.configHash, /^[0-9a-f]{64}$/);
    assert.ok(elapsed < 1000, `push took ${elapsed.toFixed(1)} ms (mutation round trip included)`);

    const key = (await gqlOk(plane, CREATE_KEY, { input: { name: 'streamed', allowedTools: ['pushme__*'] } }))
      .createVirtualKey;
    const withKey = await node.snapshot((s) => s.virtualKeys.some((k) => k.id === key.key.id), 2000);
    const keyConfig = withKey.virtualKeys.find((k) => k.id === key.key.id)!;
    assert.deepEqual(Buffer.from(keyConfig.secretSha256), createHash('sha256').update(key.secret).digest());
    assert.deepEqual(keyConfig.allowedTools, ['pushme__*']);

    await gqlOk(plane, 'mutation ($id: ID!) { revokeVirtualKey(id: $id) { id } }', { id: key.key.id });
    await node.snapshot(
      (s) => BigInt(s.version) > BigInt(withKey.version) && !s.virtualKeys.some((k) => k.id === key.key.id),
      2000,
    );

    const versions = node.snapshots.map((s) => BigInt(s.version));
    assert.deepEqual(
      [...versions].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      versions,
      'versions only increase',
    );
  });

  it(`records ACK as appliedVersion and NACK as lastError, and marks the node disconnected when the stream \
ends`, async () => {
    const node = connect();
    node.hello('node-b');
    const snapshot = await node.snapshot();
    node.ack(snapshot.version, true);
    await eventually('ACK recorded', async () => (await nodeRow('node-b'))?.appliedVersion === snapshot.version);

    node.ack('999999', false, 'upstream "x" collides with "y"');
    const nacked = await eventually('NACK recorded', async () => {
      const row = await nodeRow('node-b');
      return row?.lastError ? row : undefined;
    });
    assert.match(nacked.lastError, /999999.*upstream "x" collides with "y"/);
    assert.equal(nacked.appliedVersion, snapshot.version, 'a NACK keeps the applied version');

    node.close();
    await eventually('node-b disconnected', async () => (await nodeRow('node-b'))?.connected === false);
  });

  it(`stores an upstream report as tools and status, replacing tools no longer listed and ignoring stale \
upstreams`, async () => {
    const upstream = (
      await gqlOk(plane, CREATE_UPSTREAM, {
        input: { name: 'catalog', transport: 'STREAMABLE_HTTP', url: 'http://127.0.0.1:9/mcp' },
      })
    ).createUpstream;
    const node = connect();
    node.hello('node-c');
    const snapshot = await node.snapshot((s) => s.upstreams.some((u) => u.id === upstream.id));
    const configHash = snapshot.upstreams.find((u) => u.id === upstream.id)!.configHash;
    const tool = (name: string, description: string) => ({
      name,
      definitionSha256: '',
      definitionJson: JSON.stringify({
        name,
        description,
        inputSchema: { type: 'object', properties: { text: { type: 'string' } } },
      }),
    });
    const report = (
      tools: Array<{ name: string; definitionJson: string; definitionSha256: string }>,
      state = UpstreamState.UPSTREAM_STATE_READY,
      id = upstream.id,
      hash = configHash,
    ) =>
      node.send({
        kind: {
          $case: 'upstream',
          value: UpstreamReport.fromPartial({
            upstreamId: id,
            configHash: hash,
            state,
            error: '',
            hasCatalog: true,
            tools,
            serverName: 'test-server',
            serverVersion: '1.2.3',
            protocolVersion: '2025-11-25',
          }),
        },
      });
    const query =
      `query ($id: ID!) { upstream(id: $id) { tools { name exposedName description inputSchema ` +
      `upstream { name } firstSeenAt lastSeenAt } status { nodeId state error serverName serverVersion ` +
      `protocolVersion updatedAt } } }`;

    report([tool('echo', 'Echoes'), tool('add', 'Adds')]);
    const stored = await eventually('tools stored', async () => {
      const result = (await gqlOk(plane, query, { id: upstream.id })).upstream;
      return result.tools.length === 2 ? result : undefined;
    });
    assert.deepEqual(
      stored.tools.map((t: { exposedName: string }) => t.exposedName),
      ['catalog__add', 'catalog__echo'],
    );
    assert.equal(stored.tools[1].description, 'Echoes');
    assert.deepEqual(JSON.parse(stored.tools[1].inputSchema), {
      type: 'object',
      properties: { text: { type: 'string' } },
    });
    assert.equal(stored.tools[1].upstream.name, 'catalog');
    assert.deepEqual(
      stored.status.map(({ updatedAt: _, ...rest }: { updatedAt: string }) => rest),
      [
        {
          nodeId: 'node-c',
          state: 'READY',
          error: null,
          serverName: 'test-server',
          serverVersion: '1.2.3',
          protocolVersion: '2025-11-25',
        },
      ],
    );

    report([tool('echo', 'Echoes louder')], UpstreamState.UPSTREAM_STATE_DEGRADED);
    const replaced = await eventually('catalog replaced', async () => {
      const result = (await gqlOk(plane, query, { id: upstream.id })).upstream;
      return result.tools.length === 1 && result.status[0]?.state === 'DEGRADED' ? result : undefined;
    });
    assert.equal(replaced.tools[0].description, 'Echoes louder');
    assert.equal(replaced.tools[0].firstSeenAt, stored.tools[1].firstSeenAt, 'a tool seen again keeps its firstSeenAt');

    // Reports on an upstream that no longer exists, or on replaced settings, are ignored without ending the stream.
    report([tool('ghost', 'x')], UpstreamState.UPSTREAM_STATE_READY, '00000000-0000-4000-8000-000000000000');
    report([tool('stale', 'x')], UpstreamState.UPSTREAM_STATE_READY, upstream.id, '0'.repeat(64));
    node.ack(snapshot.version);
    await eventually('later ACK processed', async () => (await nodeRow('node-c'))?.appliedVersion === snapshot.version);
    const tools = await schema.query<{ name: string; listed: boolean }>('SELECT name, listed FROM tools ORDER BY name');
    assert.deepEqual(
      tools,
      [
        { name: 'add', listed: false },
        { name: 'echo', listed: true },
      ],
      'an unlisted tool keeps its row (and pin), shown nowhere',
    );

    await gqlOk(plane, 'mutation ($id: ID!) { deleteUpstream(id: $id) }', { id: upstream.id });
    assert.equal((await schema.query('SELECT * FROM tools')).length, 0, 'tools go with their upstream');
    assert.equal(
      (await schema.query('SELECT * FROM upstream_node_status')).length,
      0,
      'statuses go with their upstream',
    );
  });

  it('refuses to start on a port in use, naming the option', async () => {
    const graphqlPort = Number(new URL(plane.graphqlUrl).port);
    await assert.rejects(startOnSchema(schema, { graphqlPort }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'BAD_CONFIG');
      assert.match(error.message, /^graphqlHost\/graphqlPort: 127\.0\.0\.1:\d+ is already in use; choose another/);
      return true;
    });
  });

  it('delivers a change made through one replica to a node on another (LISTEN/NOTIFY)', async () => {
    const other = await startOnSchema(schema, { snapshotPollIntervalMs: 0 });
    try {
      const node = connect(NODE_TOKEN, other);
      node.hello('node-on-other');
      const first = await node.snapshot();
      const started = performance.now();
      const upstream = (
        await gqlOk(plane, CREATE_UPSTREAM, {
          input: { name: 'replicated', transport: 'SSE', url: 'http://127.0.0.1:9/sse' },
        })
      ).createUpstream;
      const pushed = await node.snapshot((s) => s.upstreams.some((u) => u.id === upstream.id), 2000);
      assert.ok(BigInt(pushed.version) > BigInt(first.version));
      assert.ok(performance.now() - started < 1000);
      // A revocation is one statement that announces itself: the other replica hears it too.
      const key = (
        await gqlOk(plane, CREATE_KEY, { input: { name: 'replicated-key', allowedTools: ['replicated__*'] } })
      ).createVirtualKey;
      const withKey = await node.snapshot((s) => s.virtualKeys.some((k) => k.id === key.key.id), 2000);
      const revoked = (
        await gqlOk(plane, 'mutation ($id: ID!) { revokeVirtualKey(id: $id) { id revoked } }', { id: key.key.id })
      ).revokeVirtualKey;
      assert.deepEqual(revoked, { id: key.key.id, revoked: true });
      const without = await node.snapshot((s) => BigInt(s.version) > BigInt(withKey.version), 2000);
      assert.ok(!without.virtualKeys.some((k) => k.id === key.key.id), 'the next revision is without the key');
      assert.equal(
        BigInt(without.version),
        BigInt(withKey.version) + 1n,
        `the revocation bumped the revision once: ${node.snapshots.map((s) => s.version).join(',')}`,
      );
    } finally {
      await other.close();
    }
  });
});
