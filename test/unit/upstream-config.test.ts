import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { AppliedConfig } from '../../data-plane/src/config/applied-config.ts';
import type { UpstreamConfig } from '../../proto/gen/portcullis/v1/config.ts';
import { everythingStdio } from '../support/upstream-pool-harness.ts';

function snapshot(upstreams: UpstreamConfig[]) {
  return {
    version: '7',
    upstreams,
    virtualKeys: [],
    sessionKeys: [{ id: 'k', secret: randomBytes(32) }],
    executionPolicies: [],
  };
}

test('a snapshot with per-upstream settings (cwd, timeouts, health, pins, unprefixed) is accepted', () => {
  const config = AppliedConfig.fromSnapshot(
    snapshot([
      everythingStdio('ok', {
        cwd: '/tmp',
        connectTimeoutMs: 1_000,
        callTimeoutMs: 2_000,
        healthIntervalMs: 500,
        healthFailureThreshold: 2,
        pinToolDefinitions: true,
        pinnedTools: [{ name: 'echo', definitionSha256: 'a'.repeat(64) }],
        exposeUnprefixed: true,
      }),
    ]),
  );
  assert.equal(config.upstreams[0]?.pinnedTools[0]?.name, 'echo');
});

test('a snapshot pinning a malformed definition hash is refused naming the field', () => {
  assert.throws(
    () =>
      AppliedConfig.fromSnapshot(
        snapshot([
          everythingStdio('bad', {
            pinToolDefinitions: true,
            pinnedTools: [{ name: 'echo', definitionSha256: 'not-a-hash' }],
          }),
        ]),
      ),
    new RegExp(
      String.raw`snapshot 7: upstreams\.0\.pinnedTools\.0\.definitionSha256: ` +
        'a pinned definition_sha256 must be 64 lower-case hex digits',
    ),
  );
});
