import assert from 'node:assert/strict';
import { RelayEnvelope } from '../../proto/gen/portcullis/v1/config.ts';
import { describe, it } from 'node:test';
import { bearerMatches } from '../../control-plane/src/auth.ts';
import { checkSnapshotConsistency } from '../../control-plane/src/config/snapshot-builder.ts';
import { upstreamConfigHash } from '../../control-plane/src/config/upstream-hash.ts';
import { parseNodeMessage } from '../../control-plane/src/grpc/messages.ts';
import { allowedToolProblem } from '../../control-plane/src/services/virtual-keys.ts';
import {
  CodeMode,
  type DeepPartial,
  UpstreamReport,
  Transport,
  UpstreamConfig,
  UpstreamState,
} from '../../proto/gen/portcullis/v1/config.ts';

describe('allowedTools patterns', () => {
  it('accepts "*", upstream wildcards and exact exposed names', () => {
    for (const pattern of ['*', 'files__*', 'files__read_file', 'my-server__tool-1', 'a__b_c']) {
      assert.equal(allowedToolProblem(pattern), undefined, pattern);
    }
  });
  it('refuses everything else with a reason and the fix', () => {
    for (const pattern of [
      '',
      'files',
      '__tool',
      'files__',
      'files__*x',
      'fi.les__x',
      'files__a b',
      `${'u'.repeat(33)}__x`,
      `files__${'t'.repeat(60)}`,
      '**',
    ]) {
      const problem = allowedToolProblem(pattern);
      assert.ok(problem, `"${pattern}" must be refused`);
      assert.match(problem, /use "\*", "<upstream>__\*" or "<upstream>__<tool>"|longer than 64/);
    }
  });
});

describe('bearerMatches', () => {
  it('matches only the exact token after "Bearer"', () => {
    assert.equal(bearerMatches('Bearer s3cret-token', 's3cret-token'), true);
    assert.equal(bearerMatches('bearer s3cret-token', 's3cret-token'), true);
    for (const header of [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      's3cret-token',
      'Basic s3cret-token',
      'Bearer s3cret-tokeN',
      'Bearer s3cret-token2',
    ]) {
      assert.equal(bearerMatches(header, 's3cret-token'), false, String(header));
    }
    assert.equal(bearerMatches('Bearer ', ''), false, 'an empty expected token never matches');
  });
});

describe('upstreamConfigHash', () => {
  const base = {
    transport: 'STDIO' as const,
    command: 'node',
    args: ['a'],
    cwd: null,
    envNames: ['K'],
    url: null,
    headerNames: [],
    hasBearerToken: false,
    secretsVersion: '00000000-0000-4000-8000-000000000001',
    enabled: true,
  };
  it('is stable and changes with every connection setting', () => {
    const hash = upstreamConfigHash(base);
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.equal(upstreamConfigHash({ ...base, args: ['a'] }), hash);
    for (const changed of [
      { command: 'deno' },
      { args: ['b'] },
      { cwd: '/srv' },
      { envNames: ['L'] },
      { transport: 'SSE' as const },
      { url: 'http://x' },
      { headerNames: ['H'] },
      { hasBearerToken: true },
      { secretsVersion: '00000000-0000-4000-8000-000000000002' },
      { enabled: false },
      { protocolVersion: 'legacy' },
    ]) {
      assert.notEqual(upstreamConfigHash({ ...base, ...changed }), hash, JSON.stringify(changed));
    }
    assert.equal(
      upstreamConfigHash({ ...base, protocolVersion: 'auto' }),
      hash,
      'the default leaves hashes made before the setting as they were',
    );
  });
});

describe('checkSnapshotConsistency', () => {
  const upstream = UpstreamConfig.fromPartial({
    id: '1',
    name: 'a',
    transport: Transport.TRANSPORT_STDIO,
    command: 'x',
  });
  const sessionKeys = [{ id: 's', secret: Buffer.alloc(32) }];
  it('refuses duplicate upstream names, bad key hashes and a missing session key', () => {
    assert.doesNotThrow(() =>
      checkSnapshotConsistency({
        version: '1',
        upstreams: [upstream],
        virtualKeys: [],
        sessionKeys,
      }),
    );
    assert.throws(
      () =>
        checkSnapshotConsistency({
          version: '1',
          upstreams: [upstream, { ...upstream, id: '2' }],
          virtualKeys: [],
          sessionKeys,
        }),
      /two upstreams are named "a"/,
    );
    assert.throws(
      () =>
        checkSnapshotConsistency({
          version: '1',
          upstreams: [],
          virtualKeys: [
            {
              id: 'k',
              name: 'k',
              secretSha256: Buffer.alloc(31),
              teamId: '',
              allowedTools: [],
              codeMode: CodeMode.CODE_MODE_INHERIT,
            },
          ],
          sessionKeys,
        }),
      /31 bytes/,
    );
    assert.throws(
      () =>
        checkSnapshotConsistency({
          version: '1',
          upstreams: [],
          virtualKeys: [],
          sessionKeys: [],
        }),
      /no session signing key/,
    );
    const twice = {
      ...upstream,
      headers: [
        { name: 'X-A', value: '1' },
        { name: 'x-a', value: '2' },
      ],
    };
    assert.throws(
      () =>
        checkSnapshotConsistency({
          version: '1',
          upstreams: [twice],
          virtualKeys: [],
          sessionKeys,
        }),
      /sends the header "x-a" twice/,
    );
    const badPin = { ...upstream, pinnedTools: [{ name: 't', definitionSha256: 'abc' }] };
    assert.throws(
      () =>
        checkSnapshotConsistency({
          version: '1',
          upstreams: [badPin],
          virtualKeys: [],
          sessionKeys,
        }),
      /pins tool "t" to "abc"/,
    );
  });
});

/** A node's upstream report: READY, of a well-formed id, unless `fields` say otherwise (the rest fromPartial's). */
function upstreamMessage(fields: DeepPartial<UpstreamReport>) {
  const value = UpstreamReport.fromPartial({
    upstreamId: '00000000-0000-4000-8000-000000000000',
    state: UpstreamState.UPSTREAM_STATE_READY,
    ...fields,
  });
  return { kind: { $case: 'upstream' as const, value } };
}

describe('parseNodeMessage', () => {
  it('accepts well-formed messages and maps states', () => {
    const parsed = parseNodeMessage(upstreamMessage({ state: UpstreamState.UPSTREAM_STATE_DOWN, error: 'refused' }));
    assert.equal(parsed.kind === 'upstream' && parsed.report.state, 'DOWN');
  });
  it('refuses an approval decision a node relays (decisions come from the control plane alone)', () => {
    assert.throws(
      () =>
        parseNodeMessage({
          kind: {
            $case: 'relay',
            value: RelayEnvelope.fromPartial({
              toNodeTag: 'abc',
              keyId: 'k1',
              kind: {
                $case: 'approvalDecision',
                value: { id: '0190a0c4-0000-7000-8000-000000000000', approved: true, reason: '', decidedBy: 'me' },
              },
            }),
          },
        }),
      /relay\.kind: a node cannot send approval decisions/,
    );
  });
  it('names the offending field', () => {
    assert.throws(
      () => parseNodeMessage({}),
      /kind: must be one of hello, ack, upstream, relay, audit, spend, approval_request or approval_withdrawal/,
    );
    assert.throws(
      () => parseNodeMessage({ kind: { $case: 'ack', value: { version: 'v1', accepted: true, error: '' } } }),
      /ack\.version: must be the decimal version/,
    );
    assert.throws(
      () => parseNodeMessage(upstreamMessage({ upstreamId: 'x' })),
      /upstream\.upstreamId: must be the id of an upstream/,
    );
    assert.throws(
      () => parseNodeMessage(upstreamMessage({ state: UpstreamState.UPSTREAM_STATE_UNSPECIFIED })),
      /upstream\.state: must be CONNECTING, READY, DEGRADED, DOWN or DISABLED/,
    );
    const resources = Array.from({ length: 1_001 }, (_, i) => ({
      uri: `test://r/${i}`,
      name: '',
      title: '',
      description: '',
      mimeType: '',
      size: 0,
    }));
    assert.throws(
      () => parseNodeMessage(upstreamMessage({ hasResources: true, resources, resourcesTotal: 1_001 })),
      /upstream\.resources: has more than 1000 entries/,
    );
    assert.throws(
      () => parseNodeMessage(upstreamMessage({ hasPrompts: true, prompts: [{ name: '' }] })),
      /upstream\.prompts\.0\.name: must be the prompt's name/,
    );
    const audit = (recordsJson: string[], ndjson: string) =>
      parseNodeMessage({
        kind: { $case: 'audit', value: { batchId: 1, recordsJson, recordsNdjson: Buffer.from(ndjson) } },
      });
    assert.throws(() => audit(['{}'], '{}\n'), /audit\.recordsNdjson: carries records_json and records_ndjson/);
    assert.throws(() => audit([], '{}\n'.repeat(5_001)), /audit\.recordsNdjson: must hold at most 5000 records/);
    assert.equal(audit([], '{}\n{}\n').kind, 'audit');
  });
});
