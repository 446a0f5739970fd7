import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { AppliedConfig } from '../../data-plane/src/config/applied-config.ts';
import { KeyIndex, keyEntry } from '../../data-plane/src/config/key-index.ts';
import {
  AuditContent,
  CodeMode,
  type Snapshot,
  type SnapshotDelta,
  type VirtualKeyConfig,
} from '../../proto/gen/portcullis/v1/config.ts';

const NONE = { expiresAtMs: 0, previousSecretSha256: Buffer.alloc(0), previousSecretExpiresAtMs: 0 };

const sessionKeys = [{ id: 's1', secret: randomBytes(32) }];
const sha = (secret: string) => createHash('sha256').update(secret).digest();
const key = (id: string, secret = `secret-${id}`, allowedTools = ['*']): VirtualKeyConfig => ({
  id,
  name: `key ${id}`,
  secretSha256: sha(secret),
  teamId: '',
  allowedTools,
  codeMode: CodeMode.CODE_MODE_INHERIT,
  auditContent: AuditContent.AUDIT_CONTENT_INHERIT,
  ...NONE,
});

function snapshot(version: string, keys: VirtualKeyConfig[]): Snapshot {
  return {
    version,
    upstreams: [],
    virtualKeys: keys,
    sessionKeys,
    teams: [],
    customers: [],
    prices: [],
    budgeted: [],
    executionPolicies: [],
    takesAuditRows: false,
  };
}

function delta(
  baseVersion: string,
  version: string,
  upsertedKeys: VirtualKeyConfig[],
  removedKeyIds: string[] = [],
): SnapshotDelta {
  return {
    version,
    baseVersion,
    upstreams: [],
    sessionKeys,
    upsertedKeys,
    removedKeyIds,
    teams: [],
    customers: [],
    prices: [],
    budgeted: [],
    executionPolicies: [],
  };
}

describe('applying a snapshot delta on a node', () => {
  it('adds, replaces and removes keys, leaving the configuration it was applied to unchanged', () => {
    const base = AppliedConfig.fromSnapshot(snapshot('5', [key('a'), key('b'), key('c')]));
    const next = base.applyDelta(delta('5', '6', [key('d'), key('b', 'secret-b', ['up__*'])], ['a']));
    assert.equal(next.version, '6');
    assert.equal(next.keyCount, 3);
    assert.equal(next.authenticate('secret-a'), undefined, 'a removed key is refused');
    assert.equal(next.principalByKeyId('a'), undefined);
    assert.equal(next.authenticate('secret-d')?.keyId, 'd', 'an added key is accepted');
    assert.equal(
      next.authenticate('secret-b')?.allowList.allows('other__tool', 'other'),
      false,
      'a replaced key has its new allow-list',
    );
    assert.equal(next.authenticate('secret-b')?.allowList.allows('up__tool', 'up'), true);
    assert.equal(base.authenticate('secret-a')?.keyId, 'a', 'the base still serves what it served (atomic swap)');
    assert.equal(base.authenticate('secret-d'), undefined);
    assert.equal(base.keyCount, 3);
  });

  it('follows a key whose secret hash changed: the old secret is refused, the new one accepted', () => {
    const base = AppliedConfig.fromSnapshot(snapshot('1', [key('a', 'old')]));
    const next = base.applyDelta(delta('1', '2', [key('a', 'new')]));
    assert.equal(next.authenticate('old'), undefined);
    assert.equal(next.authenticate('new')?.keyId, 'a');
    assert.equal(next.keyCount, 1);
  });

  it('refuses a delta on another base version, naming both versions', () => {
    const base = AppliedConfig.fromSnapshot(snapshot('5', [key('a')]));
    assert.throws(
      () => base.applyDelta(delta('4', '6', [key('b')])),
      /delta 6: base_version 4 is not the version this node runs \(5\); send the whole snapshot/,
    );
  });

  it('refuses a malformed delta naming the field', () => {
    const base = AppliedConfig.fromSnapshot(snapshot('5', []));
    const bad = { ...key('b'), secretSha256: Buffer.alloc(31) };
    assert.throws(
      () => base.applyDelta(delta('5', '6', [bad])),
      /delta 6: upsertedKeys\.0\.secretSha256: secretSha256 must be 32 bytes/,
    );
    assert.throws(
      () => base.applyDelta({ ...delta('5', '6', []), sessionKeys: [] }),
      /delta 6: sessionKeys: at least one session key is required/,
    );
    assert.throws(() => base.applyDelta(delta('5', '5', [])), /delta 5: version is not newer than its base 5/);
  });

  it('gives back the whole snapshot it holds (for the restart cache)', () => {
    const base = AppliedConfig.fromSnapshot(snapshot('5', [key('a'), key('b')]));
    const next = base.applyDelta(delta('5', '6', [key('c')], ['a']));
    const whole = next.toSnapshot();
    assert.equal(whole.version, '6');
    assert.deepEqual(whole.virtualKeys.map((k) => k.id).sort(), ['b', 'c']);
    assert.equal(AppliedConfig.fromSnapshot(whole).authenticate('secret-c')?.keyId, 'c');
  });
});

describe('key index (shared base plus an overlay of changes)', () => {
  it('answers exactly as a plain map through many random changes, across overlay folds', () => {
    let seed = 42;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const model = new Map<string, VirtualKeyConfig>();
    for (let i = 0; i < 300; i++) model.set(`k${i}`, key(`k${i}`));
    let index = KeyIndex.of([...model.values()].map((key) => keyEntry(key)));
    const generation = new Map<string, number>();
    for (let step = 0; step < 400; step++) {
      const upserts: VirtualKeyConfig[] = [];
      const removals: string[] = [];
      for (let change = random(4); change >= 0; change--) {
        const id = `k${random(400)}`;
        if (random(3) === 0) {
          const upserted = upserts.findIndex((u) => u.id === id);
          if (upserted >= 0) upserts.splice(upserted, 1);
          removals.push(id);
          model.delete(id);
        } else {
          // A new secret now and then: the index must drop the old hash.
          const g = (generation.get(id) ?? 0) + random(2);
          generation.set(id, g);
          const next = key(id, `secret-${id}-${g}`);
          const at = removals.indexOf(id);
          if (at >= 0) removals.splice(at, 1);
          const upserted = upserts.findIndex((u) => u.id === id);
          if (upserted >= 0) upserts.splice(upserted, 1);
          upserts.push(next);
          model.set(id, next);
        }
      }
      const before = index;
      const sizeBefore = before.size;
      index = index.with(
        upserts.map((key) => keyEntry(key)),
        removals,
      );
      assert.equal(before.size, sizeBefore, 'the previous index is unchanged');
      assert.equal(index.size, model.size, `size after step ${step}`);
    }
    for (let i = 0; i < 400; i++) {
      const id = `k${i}`;
      const expected = model.get(id);
      assert.equal(index.byId(id)?.config, expected, `byId ${id}`);
      for (let g = 0; g < 3; g++) {
        const hash = sha(g === 0 ? `secret-${id}` : `secret-${id}-${g}`).toString('hex');
        const found = index.byHash(hash)?.config;
        const current = expected && Buffer.from(expected.secretSha256).toString('hex') === hash ? expected : undefined;
        assert.equal(found, current, `byHash ${id} generation ${g}`);
      }
    }
    assert.deepEqual([...index.entries()].map((e) => e.config.id).sort(), [...model.keys()].sort());
  });
});
