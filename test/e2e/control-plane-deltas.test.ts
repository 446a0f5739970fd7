// The builder and publisher tests drive a data source by hand; the config stream tests use startTestEnv.
// Incremental snapshots and deltas on the config stream, against the real PostgreSQL.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { DataSource } from 'typeorm';
import { PgNotifyChangeBus } from '../../control-plane/src/config/change-bus.ts';
import { SnapshotBuilder, buildSnapshot } from '../../control-plane/src/config/snapshot-builder.ts';
import { SnapshotPublisher } from '../../control-plane/src/config/snapshot-publisher.ts';
import { openDatabase } from '../../control-plane/src/db/data-source.ts';
import type { ControlPlane } from '../../control-plane/src/index.ts';
import { SecretBox, parseSecretKey } from '../../control-plane/src/secrets/index.ts';
import { ensureSessionKeys } from '../../control-plane/src/services/settings.ts';
import { VirtualKeyService } from '../../control-plane/src/services/virtual-keys.ts';
import type { Snapshot, SnapshotDelta, VirtualKeyConfig } from '../../proto/gen/portcullis/v1/config.ts';
import { createTestSchema, type TestSchema } from '../support/database.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { NODE_TOKEN, SECRET_KEY, TestNode, gqlOk, startOnSchema, testLogger } from './control-plane-harness.ts';
import { eventually } from '../support/eventually.ts';

const CREATE_KEY = `mutation ($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { key { id } } }`;
const CREATE_KEYS =
  `mutation ($inputs: [CreateVirtualKeyInput!]!) { createVirtualKeys(inputs: $inputs) { key { ` + `id } } }`;
const REVOKE = `mutation ($id: ID!) { revokeVirtualKey(id: $id) { id } }`;
const CREATE_UPSTREAM = `mutation ($input: CreateUpstreamInput!) { createUpstream(input: $input) { id } }`;

/** A snapshot with a delta applied, as a node would hold it (keys by id). */
function applyDelta(base: Snapshot, delta: SnapshotDelta): Snapshot {
  assert.equal(
    delta.baseVersion,
    base.version,
    `delta ${delta.version} is based on ${delta.baseVersion}, the node holds ${base.version}`,
  );
  const keys = new Map(base.virtualKeys.map((key) => [key.id, key]));
  for (const id of delta.removedKeyIds) keys.delete(id);
  for (const key of delta.upsertedKeys) keys.set(key.id, key);
  return {
    version: delta.version,
    upstreams: delta.upstreams,
    virtualKeys: [...keys.values()],
    sessionKeys: delta.sessionKeys,
    teams: delta.teams,
    customers: delta.customers,
    prices: delta.prices,
    budgeted: delta.budgeted,
    executionPolicies: delta.executionPolicies,
    takesAuditRows: base.takesAuditRows,
  };
}

/** What a node holds after everything it was sent, in order. */
function heldBy(node: TestNode): Snapshot {
  let held: Snapshot | undefined;
  for (const message of node.received) {
    if (message.kind?.$case === 'snapshot') held = message.kind.value;
    else if (message.kind?.$case === 'delta') held = applyDelta(held!, message.kind.value);
  }
  assert.ok(held, 'the node received a snapshot');
  return held;
}

const keyIds = (keys: readonly VirtualKeyConfig[]) => keys.map((key) => key.id).sort();

describe('config stream deltas', () => {
  let schema: TestSchema;
  let plane: ControlPlane;
  /** A second connection to the plane's database, for full reads to compare with. */
  let dataSource: DataSource;
  const nodes: TestNode[] = [];
  const connect = (acceptsDeltas: boolean, nodeId: string) => {
    const node = new TestNode(plane.grpcAddress, NODE_TOKEN);
    nodes.push(node);
    node.hello(nodeId, { acceptsDeltas });
    return node;
  };

  let env: TestEnv | undefined;
  before(async () => {
    env = await startTestEnv({ schemaPrefix: 'deltas', controlPlane: 'in-process' });
    ({ schema } = env);
    plane = env.plane!;
    const source = (dataSource = await openDatabase({
      url: schema.url,
      schema: schema.name,
      poolSize: 2,
      embedded: false,
    }));
    env.defer(() => source.destroy());
  });
  afterEach(() => {
    for (const node of nodes.splice(0)) node.close();
  });
  after(async () => {
    await env?.dispose();
  });

  it('sends a node that accepts deltas the whole snapshot first, then only the keys that changed', async () => {
    await gqlOk(plane, CREATE_KEYS, { inputs: Array.from({ length: 50 }, (_, i) => ({ name: `bulk-${i}` })) });
    const node = connect(true, 'delta-node');
    const first = await node.snapshot();
    assert.ok(first.virtualKeys.length >= 50);
    assert.equal(first.takesAuditRows, true, 'the control plane says it takes audit rows');

    const created = (await gqlOk(plane, CREATE_KEY, { input: { name: 'delta-created', allowedTools: ['up__*'] } }))
      .createVirtualKey.key.id;
    const added = await node.delta((d) => d.upsertedKeys.some((key) => key.id === created));
    assert.equal(added.baseVersion, first.version);
    assert.deepEqual(
      added.upsertedKeys.map((key) => key.id),
      [created],
      'only the new key travels',
    );
    assert.deepEqual(added.upsertedKeys[0]!.allowedTools, ['up__*']);
    assert.deepEqual(added.removedKeyIds, []);
    assert.ok(added.sessionKeys.length >= 1, 'session keys come whole');

    await gqlOk(plane, REVOKE, { id: created });
    const revoked = await node.delta((d) => d.removedKeyIds.includes(created));
    assert.equal(revoked.baseVersion, added.version, 'each delta builds on the one before');
    assert.deepEqual(revoked.upsertedKeys, []);
    assert.deepEqual(revoked.removedKeyIds, [created]);

    const upstream = (
      await gqlOk(plane, CREATE_UPSTREAM, {
        input: {
          name: 'delta-up',
          transport: 'STDIO',
          command: 'node',
          env: [{ name: 'TOKEN', value: 'plain-for-nodes' }],
        },
      })
    ).createUpstream.id;
    const withUpstream = await node.delta((d) => d.upstreams.some((u) => u.id === upstream));
    assert.deepEqual(withUpstream.upsertedKeys, [], 'an upstream change carries no keys');
    assert.deepEqual(withUpstream.upstreams.find((u) => u.id === upstream)!.env, [
      { name: 'TOKEN', value: 'plain-for-nodes' },
    ]);

    assert.equal(node.snapshots.length, 1, `one whole snapshot, then deltas; received ${node.describeReceived()}`);
    const expected = await buildSnapshot(dataSource, boxForTests());
    const held = heldBy(node);
    assert.equal(held.version, expected.version);
    assert.deepEqual(keyIds(held.virtualKeys), keyIds(expected.virtualKeys));
  });

  it('keeps sending whole snapshots to a node that does not accept deltas', async () => {
    const node = connect(false, 'whole-node');
    await node.snapshot();
    const created = (await gqlOk(plane, CREATE_KEY, { input: { name: 'whole-created' } })).createVirtualKey.key.id;
    await node.snapshot((s) => s.virtualKeys.some((key) => key.id === created));
    assert.equal(node.deltas.length, 0);
  });

  it('answers a refused delta with the whole current snapshot', async () => {
    const node = connect(true, 'nack-node');
    const first = await node.snapshot();
    node.ack(first.version);
    const created = (await gqlOk(plane, CREATE_KEY, { input: { name: 'nack-created' } })).createVirtualKey.key.id;
    const delta = await node.delta((d) => d.upsertedKeys.some((key) => key.id === created));
    node.ack(delta.version, false, `delta ${delta.version}: base_version does not match`);
    const resent = await node.snapshot((s) => s !== first);
    assert.equal(resent.version, delta.version, 'the whole snapshot of the current revision');
    assert.ok(resent.virtualKeys.some((key) => key.id === created));

    // The next change goes as a delta again, on the version re-sent whole.
    node.ack(resent.version);
    const next = (await gqlOk(plane, CREATE_KEY, { input: { name: 'after-nack' } })).createVirtualKey.key.id;
    const after = await node.delta((d) => d.upsertedKeys.some((key) => key.id === next));
    assert.equal(after.baseVersion, resent.version);
    assert.equal(node.snapshots.length, 2);
  });

  it('records the answers of many nodes arriving at once, each as it would be alone', async () => {
    const fleet = Array.from({ length: 6 }, (_, i) => connect(true, `ack-node-${i}`));
    const snapshots = await Promise.all(fleet.map((node) => node.snapshot()));
    // Node 1 refuses first and then accepts: once its version shows, both answers were processed.
    fleet[1]!.ack('999998', false, 'refused, then accepted');
    fleet.forEach((node, i) => node.ack(snapshots[i]!.version));
    fleet[0]!.ack('999999', false, 'refused on purpose');
    const rows = await eventually('every answer recorded', async () => {
      const all: Array<{ id: string; appliedVersion: string | null; lastError: string | null }> = (
        await gqlOk(plane, '{ nodes { id appliedVersion lastError } }')
      ).nodes;
      const mine = all.filter((row) => row.id.startsWith('ack-node-')).sort((a, b) => a.id.localeCompare(b.id));
      return mine.length === 6 && mine.every((row) => row.appliedVersion !== null) && mine[0]!.lastError
        ? mine
        : undefined;
    });
    rows.forEach((row, i) => assert.equal(row.appliedVersion, snapshots[i]!.version, row.id));
    assert.match(rows[0]!.lastError!, /version 999999 refused: refused on purpose/);
    assert.equal(rows[1]!.lastError, null, 'an ACK after the NACK cleared it');
    for (const row of rows.slice(2)) assert.equal(row.lastError, null);
  });

  it('misses no change made by concurrent transactions, and removes keys deleted outright', async () => {
    const node = connect(true, 'concurrent-node');
    await node.snapshot();
    const ids = await Promise.all(
      Array.from(
        { length: 24 },
        async (_, i) =>
          (await gqlOk(plane, CREATE_KEY, { input: { name: `concurrent-${i}` } })).createVirtualKey.key.id as string,
      ),
    );
    await Promise.all(ids.slice(0, 8).map((id) => gqlOk(plane, REVOKE, { id })));
    // A key deleted with plain SQL (no mutation does this yet) leaves a tombstone; the next change carries it.
    await schema.query('DELETE FROM virtual_keys WHERE id = $1', [ids[8]]);
    const marker = (await gqlOk(plane, CREATE_KEY, { input: { name: 'concurrent-marker' } })).createVirtualKey.key.id;
    await node.delta((d) => d.upsertedKeys.some((key) => key.id === marker));

    const expected = await buildSnapshot(dataSource, boxForTests());
    const held = heldBy(node);
    assert.equal(held.version, expected.version);
    assert.deepEqual(
      keyIds(held.virtualKeys),
      keyIds(expected.virtualKeys),
      'deltas add up to a full read of the same revision',
    );
    for (const id of ids.slice(0, 9)) assert.ok(!held.virtualKeys.some((key) => key.id === id), `key ${id} is gone`);
    for (const id of ids.slice(9))
      assert.ok(
        held.virtualKeys.some((key) => key.id === id),
        `key ${id} is there`,
      );
  });
});

function boxForTests(): SecretBox {
  return new SecretBox(parseSecretKey(SECRET_KEY, 'secretKey'));
}

describe('incremental snapshot builder', () => {
  let schema: TestSchema;
  before(async () => {
    schema = await createTestSchema('builder');
  });
  after(async () => {
    await schema?.drop();
  });

  it('reads only the keys changed since its last build and decrypts only upstreams that changed', async () => {
    const plane = await startOnSchema(schema);
    const dataSource = await openDatabase({ url: schema.url, schema: schema.name, poolSize: 2, embedded: false });
    try {
      await ensureSessionKeys(dataSource);
      await gqlOk(plane, CREATE_KEYS, { inputs: Array.from({ length: 30 }, (_, i) => ({ name: `k-${i}` })) });
      const upstream = (
        await gqlOk(plane, CREATE_UPSTREAM, {
          input: { name: 'sealed', transport: 'STREAMABLE_HTTP', url: 'https://example.com/mcp', bearerToken: 'tok-1' },
        })
      ).createUpstream.id;
      const builder = new SnapshotBuilder(dataSource, boxForTests());

      const first = await builder.build();
      assert.equal(first.timings.incremental, false);
      assert.equal(first.timings.keysRead, 30);
      assert.equal(first.timings.upstreamsOpened, 1);
      assert.equal(first.delta, undefined);

      const created = (await gqlOk(plane, CREATE_KEY, { input: { name: 'one-more' } })).createVirtualKey.key.id;
      const second = await builder.build();
      assert.equal(second.timings.incremental, true);
      assert.equal(second.timings.keysRead, 1, 'one key changed, one key read');
      assert.equal(second.timings.upstreamsOpened, 0, 'the unchanged upstream comes from the cache');
      assert.deepEqual(
        second.delta?.upsertedKeys.map((key) => key.id),
        [created],
      );
      assert.equal(second.snapshot.virtualKeys.length, 31);
      assert.equal(
        second.snapshot.upstreams[0]!.headers.find((h) => h.name === 'Authorization')?.value,
        'Bearer tok-1',
      );

      await gqlOk(plane, `mutation ($id: ID!) { updateUpstream(id: $id, input: { bearerToken: "tok-2" }) { id } }`, {
        id: upstream,
      });
      const third = await builder.build();
      assert.equal(third.timings.upstreamsOpened, 1);
      assert.equal(third.timings.keysRead, 0);
      assert.equal(third.snapshot.upstreams[0]!.headers.find((h) => h.name === 'Authorization')?.value, 'Bearer tok-2');

      const unchanged = await builder.build();
      assert.equal(unchanged.snapshot, third.snapshot, 'no new revision: the same snapshot, no delta');
      assert.equal(unchanged.delta, undefined);

      const full = await buildSnapshot(dataSource, boxForTests());
      assert.deepEqual(keyIds(third.snapshot.virtualKeys), keyIds(full.virtualKeys));
    } finally {
      await dataSource.destroy();
      await plane.close();
    }
  });

  it('stamps a key written without a revision bump with the next revision, so the next change carries it', async () => {
    const dataSource = await openDatabase({ url: schema.url, schema: schema.name, poolSize: 2, embedded: false });
    try {
      const builder = new SnapshotBuilder(dataSource, boxForTests());
      const before = await builder.build();
      await dataSource.query(
        `INSERT INTO virtual_keys (name, prefix, secret_sha256) VALUES ('unbumped', 'pcs_x', ` +
          `sha256('unbumped'::bytea))`,
      );
      const [{ version }] = await dataSource.query(`SELECT version::text FROM config_revision`);
      assert.equal(version, before.snapshot.version, 'no bump happened');
      assert.equal((await builder.build()).delta, undefined, 'nothing to publish yet');
      await dataSource.query(`UPDATE config_revision SET version = version + 1`);
      const after = await builder.build();
      assert.deepEqual(
        after.delta?.upsertedKeys.map((key) => key.name),
        ['unbumped'],
      );
    } finally {
      await dataSource.destroy();
    }
  });
});

describe('snapshot publisher', () => {
  it(`builds once per commit: its own commits are told in process, and their NOTIFY echo is ignored (another replica \
hears it)`, async () => {
    const schema = await createTestSchema('publisher');
    const dataSource = await openDatabase({ url: schema.url, schema: schema.name, poolSize: 4, embedded: false });
    const bus = await PgNotifyChangeBus.start({ url: schema.url, schema: schema.name, logger: testLogger() });
    const publisher = new SnapshotPublisher({
      dataSource,
      changes: bus,
      box: boxForTests(),
      logger: testLogger(),
      pollIntervalMs: 0,
    });
    const otherReplica = await PgNotifyChangeBus.start({ url: schema.url, schema: schema.name, logger: testLogger() });
    try {
      await ensureSessionKeys(dataSource);
      await publisher.start();
      const announcements = new Map<string, number>();
      bus.onChange((version) => {
        if (version !== undefined) announcements.set(version, (announcements.get(version) ?? 0) + 1);
      });
      const heardElsewhere = new Set<string>();
      otherReplica.onChange((version) => void (version !== undefined && heardElsewhere.add(version)));
      const keys = new VirtualKeyService({ dataSource, changes: bus });
      const before = publisher.builds;
      const changes = 6;
      for (let i = 0; i < changes; i++) {
        await keys.create({ name: `announced-${i}` });
        // Told in process before create() returned.
        const version = [...announcements.keys()].at(-1)!;
        assert.equal(announcements.size, i + 1);
        // Once the other replica heard the NOTIFY, this one has had it too, and ignored it.
        await eventually(`revision ${version} heard by the other replica`, () => heardElsewhere.has(version));
        await publisher.settled();
        assert.equal(announcements.get(version), 1, `revision ${version} announced once here`);
        assert.ok(BigInt(publisher.current().version) >= BigInt(version));
      }
      assert.equal(publisher.builds - before, changes, 'one build per commit');
    } finally {
      await publisher.close();
      await otherReplica.close();
      await bus.close();
      await dataSource.destroy();
      await schema.drop();
    }
  });
});
