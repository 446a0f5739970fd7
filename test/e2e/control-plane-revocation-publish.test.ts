// A revocation committed by this control plane goes to the nodes in the turn it commits (no read of
// the database in between), and only when nothing else can be in the revision.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DataSource } from 'typeorm';
import {
  InProcessChangeBus,
  PgNotifyChangeBus,
  type ConfigChangeBus,
} from '../../control-plane/src/config/change-bus.ts';
import { buildSnapshot } from '../../control-plane/src/config/snapshot-builder.ts';
import { SnapshotPublisher, type Publication } from '../../control-plane/src/config/snapshot-publisher.ts';
import { SecretBox, parseSecretKey } from '../../control-plane/src/secrets/index.ts';
import { ensureSessionKeys } from '../../control-plane/src/services/settings.ts';
import { VirtualKeyService } from '../../control-plane/src/services/virtual-keys.ts';
import { startTestEnv, type TestEnv } from '../support/test-env.ts';
import { SECRET_KEY, testLogger } from './control-plane-harness.ts';
import { eventually } from '../support/eventually.ts';

const box = () => new SecretBox(parseSecretKey(SECRET_KEY, 'secretKey'));

for (const kind of ['in-process', 'NOTIFY'] as const) {
  describe(`publishing a revocation (${kind} announcements)`, () => {
    let env: TestEnv;
    let dataSource: DataSource;
    let bus: ConfigChangeBus;
    let publisher: SnapshotPublisher;
    let keys: VirtualKeyService;
    const publications: Publication[] = [];

    before(async () => {
      env = await startTestEnv({ schemaPrefix: 'revocation_publish', controlPlane: 'none' });
      dataSource = await env.openDatabase(4);
      const { url, name } = env.schema;
      const changes =
        kind === 'NOTIFY'
          ? await PgNotifyChangeBus.start({ url, schema: name, logger: testLogger() })
          : new InProcessChangeBus();
      bus = changes;
      env.defer(() => changes.close());
      await ensureSessionKeys(dataSource);
      publisher = new SnapshotPublisher({
        dataSource,
        changes: bus,
        box: box(),
        logger: testLogger(),
        pollIntervalMs: 0,
      });
      env.defer(() => publisher.close());
      await publisher.start();
      publisher.subscribe((publication) => publications.push(publication));
      keys = new VirtualKeyService({ dataSource, changes: bus });
    });
    after(async () => {
      await env?.dispose();
    });

    it('is published before the mutation returns, as a delta removing the key, and matches a full read', async () => {
      const [kept, revoked] = await keys.createMany([{ name: 'kept' }, { name: 'revoked' }]);
      await publisher.settled();
      const base = publisher.current();
      const builds = publisher.builds;
      publications.length = 0;
      await keys.revoke(revoked!.key.id);
      // Nothing awaited since the mutation returned: a read of the database could not have finished yet.
      assert.equal(publications.length, 1, 'published in the turn the revocation committed');
      const [{ snapshot, delta }] = publications as [Publication];
      assert.equal(snapshot.version, String(BigInt(base.version) + 1n));
      assert.deepEqual(
        delta && {
          base: delta.baseVersion,
          removed: delta.removedKeyIds,
          upserted: delta.upsertedKeys,
          upstreams: delta.upstreams,
          sessionKeys: delta.sessionKeys,
        },
        {
          base: base.version,
          removed: [revoked!.key.id],
          upserted: [],
          upstreams: base.upstreams,
          sessionKeys: base.sessionKeys,
        },
      );
      assert.deepEqual(
        snapshot,
        await buildSnapshot(dataSource, box()),
        'the same snapshot as a whole read of the revision',
      );
      assert.ok(snapshot.virtualKeys.some((key) => key.id === kept!.key.id));
      await publisher.settled();
      assert.equal(
        publisher.builds - builds,
        1,
        'no read afterwards either (the NOTIFY of the same revision asks for nothing)',
      );
    });

    it('reads the revision when another change came in between that this process has not published', async () => {
      const [other, revoked] = await keys.createMany([{ name: 'placeholder' }, { name: 'revoked-later' }]);
      await publisher.settled();
      // Another replica's commit, announced to nobody here: the next revision is not this one plus a revocation.
      const elsewhere = await new VirtualKeyService({ dataSource, changes: new InProcessChangeBus() }).create({
        name: 'from-another-replica',
      });
      publications.length = 0;
      await keys.revoke(revoked!.key.id);
      await eventually('the revision read and published', () =>
        publications.find(
          (p) =>
            BigInt(p.snapshot.version) >= BigInt(publisher.current().version) &&
            p.snapshot.virtualKeys.some((key) => key.id === elsewhere.key.id),
        ),
      );
      await publisher.settled();
      const latest = publisher.current();
      assert.ok(!latest.virtualKeys.some((key) => key.id === revoked!.key.id), 'the revoked key is gone');
      assert.ok(latest.virtualKeys.some((key) => key.id === other!.key.id));
      assert.deepEqual(latest, await buildSnapshot(dataSource, box()));
    });
  });
}
