import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { resolveAccessLists } from '../../common/src/index.ts';
import { AppliedConfig, type DeltaInput } from '../../data-plane/src/config/applied-config.ts';
import { AllowList } from '../../data-plane/src/policy/allow-list.ts';
import {
  AuditContent,
  CodeMode,
  type TeamConfig,
  type VirtualKeyConfig,
} from '../../proto/gen/portcullis/v1/config.ts';

const sessionKeys = [{ id: 's1', secret: randomBytes(32) }];
const sha = (secret: string) => createHash('sha256').update(secret).digest();

function key(id: string, fields: Partial<VirtualKeyConfig> = {}): VirtualKeyConfig {
  return {
    id,
    name: id,
    secretSha256: sha(`secret-${id}`),
    teamId: '',
    allowedTools: ['*'],
    access: resolveAccessLists({}),
    expiresAtMs: 0,
    previousSecretSha256: Buffer.alloc(0),
    previousSecretExpiresAtMs: 0,
    rateLimits: undefined,
    codeMode: CodeMode.CODE_MODE_INHERIT,
    auditContent: AuditContent.AUDIT_CONTENT_INHERIT,
    ...fields,
  };
}

function team(id: string, lists: Parameters<typeof resolveAccessLists>[0]): TeamConfig {
  return { id, name: id, customerId: '', access: resolveAccessLists(lists), rateLimits: undefined };
}

/** Version 2 on top of a `snapshot` (version 1): nothing changed but `changes`. */
function delta(changes: Partial<DeltaInput>): DeltaInput {
  return {
    version: '2',
    baseVersion: '1',
    upstreams: [],
    sessionKeys,
    removedKeyIds: [],
    upsertedKeys: [],
    teams: [],
    customers: [],
    ...changes,
  };
}

describe('access lists (allow and deny, key and team)', () => {
  it('deny wins over allow, for exact names and whole upstreams', () => {
    const list = AllowList.of(resolveAccessLists({ allowedTools: ['*'], deniedTools: ['ev__echo', 'db__*'] }));
    assert.equal(list.allows('ev__get-sum', 'ev'), true);
    assert.equal(list.allows('ev__echo', 'ev'), false);
    assert.equal(list.allows('db__query', 'db'), false);
  });

  it('a key may use only what both its own lists and its team allow', () => {
    const list = AllowList.of(
      resolveAccessLists({ allowedTools: ['ev__*', 'db__query'] }),
      resolveAccessLists({ allowedTools: ['ev__echo', 'db__*'] }),
    );
    assert.equal(list.allows('ev__echo', 'ev'), true);
    assert.equal(list.allows('ev__get-sum', 'ev'), false, 'the team does not allow it');
    assert.equal(list.allows('db__query', 'db'), true);
    assert.equal(list.allows('db__drop', 'db'), false, 'the key does not allow it');
  });

  it('prompts follow the tool patterns unless given their own lists', () => {
    const following = AllowList.of(resolveAccessLists({ allowedTools: ['ev__*'] }));
    assert.equal(following.allowsPrompt('ev__simple-prompt', 'ev'), true);
    const own = AllowList.of(resolveAccessLists({ allowedTools: ['ev__*'], deniedPrompts: ['ev__simple-prompt'] }));
    assert.equal(own.allowsPrompt('ev__simple-prompt', 'ev'), false);
    assert.equal(own.allows('ev__simple-prompt', 'ev'), true, 'a tool of that name is not a prompt');
  });

  it('resources by URI prefix or upstream, deny winning; by default those of upstreams the tools reach', () => {
    const byDefault = AllowList.of(resolveAccessLists({ allowedTools: ['ev__echo'] }));
    assert.equal(byDefault.allowsResource('demo://resource/static/document/1', 'ev'), true);
    assert.equal(byDefault.allowsResource('file:///etc/passwd', 'fs'), false);
    const prefixed = AllowList.of(
      resolveAccessLists({
        allowedResources: ['demo://resource/static/', 'fs__*'],
        deniedResources: ['demo://resource/static/document/2'],
      }),
    );
    assert.equal(prefixed.allowsResource('demo://resource/static/document/1', 'ev'), true);
    assert.equal(prefixed.allowsResource('demo://resource/static/document/2', 'ev'), false);
    assert.equal(prefixed.allowsResource('demo://resource/dynamic/1', 'ev'), false);
    assert.equal(prefixed.allowsResource('file:///anything', 'fs'), true);
    assert.equal(prefixed.grantsUpstreamResources('fs'), false, 'a deny-list may still hide some of fs');
  });
});

describe('key lifecycle on a node (no control plane involved)', () => {
  const snapshot = (keys: VirtualKeyConfig[], teams: TeamConfig[] = []) =>
    AppliedConfig.fromSnapshot({ version: '1', upstreams: [], virtualKeys: keys, sessionKeys, teams, customers: [] });

  it('an expired key is refused from its expiry on, by secret and by id', () => {
    const config = snapshot([key('a', { expiresAtMs: 10_000 })]);
    assert.equal(config.authenticate('secret-a', 9_999)?.keyId, 'a');
    assert.equal(config.authenticate('secret-a', 10_000), undefined);
    assert.equal(config.principalByKeyId('a', 10_000), undefined);
  });

  it('a rotated-away secret works until its grace period ends; the new one after', () => {
    const config = snapshot([
      key('a', { secretSha256: sha('new'), previousSecretSha256: sha('old'), previousSecretExpiresAtMs: 5_000 }),
    ]);
    assert.equal(config.authenticate('old', 4_999)?.keyId, 'a');
    assert.equal(config.authenticate('old', 5_000), undefined);
    assert.equal(config.authenticate('new', 1e12)?.keyId, 'a');
  });

  it('a delta that rotates again drops the secret before last', () => {
    const base = snapshot([
      key('a', { secretSha256: sha('two'), previousSecretSha256: sha('one'), previousSecretExpiresAtMs: 1e13 }),
    ]);
    const next = base.applyDelta(
      delta({
        upsertedKeys: [
          key('a', { secretSha256: sha('three'), previousSecretSha256: sha('two'), previousSecretExpiresAtMs: 1e13 }),
        ],
      }),
    );
    assert.equal(next.authenticate('one'), undefined);
    assert.equal(next.authenticate('two')?.keyId, 'a');
    assert.equal(next.authenticate('three')?.keyId, 'a');
    assert.equal(base.authenticate('one')?.keyId, 'a', 'the base is unchanged');
  });

  it("a team's lists apply to its keys and a delta changing them recompiles the keys", () => {
    const base = snapshot([key('a', { teamId: 't' }), key('b')], [team('t', { deniedTools: ['ev__echo'] })]);
    assert.equal(base.principalByKeyId('a')?.allowList.allows('ev__echo', 'ev'), false);
    assert.equal(base.principalByKeyId('b')?.allowList.allows('ev__echo', 'ev'), true);
    const next = base.applyDelta(delta({ teams: [team('t', { allowedTools: ['db__*'] })] }));
    assert.equal(next.principalByKeyId('a')?.allowList.allows('ev__echo', 'ev'), false);
    assert.equal(next.principalByKeyId('a')?.allowList.allows('db__x', 'db'), true);
  });

  it('a key whose team is missing from the snapshot may use nothing', () => {
    const config = snapshot([key('a', { teamId: 'gone' })]);
    assert.equal(config.principalByKeyId('a')?.allowList.allows('ev__echo', 'ev'), false);
  });
});
