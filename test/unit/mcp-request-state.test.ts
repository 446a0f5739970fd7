import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  signRequestState,
  verifyRequestState,
  type RequestStateClaims,
} from '../../data-plane/src/mcp/request-state.ts';
import { signSessionToken } from '../../data-plane/src/mcp/session-token.ts';
import { sessionKey } from '../support/mcp-server-harness.ts';

const current = sessionKey('s2');
const previous = sessionKey('s1');
const claims: RequestStateClaims = {
  keyId: 'k1',
  node: 'node-a',
  exchange: 'x1',
  round: 1,
  method: 'tools/call',
  subject: 'up__ask',
  expiresAt: Date.now() + 60_000,
};

test('DN-INPUT-STATE-REFUSED: request state verifies under any current session key and carries its claims', () => {
  const state = signRequestState(claims, [current, previous]);
  assert.deepEqual(verifyRequestState(state, 'k1', [current, previous]), { ok: true, claims });
  // After a rotation the signing key is the previous one and still accepted.
  assert.equal(verifyRequestState(state, 'k1', [sessionKey('s3'), current]).ok, true);
  assert.deepEqual(verifyRequestState(state, 'k1', [sessionKey('s3')]), { ok: false, reason: 'unknown-signing-key' });
  const upstreamRound = {
    keyId: 'k1',
    method: 'prompts/get',
    subject: 'p',
    upstream: 'up',
    upstreamState: 'opaque',
    expiresAt: claims.expiresAt,
  };
  assert.deepEqual(verifyRequestState(signRequestState(upstreamRound, [current]), 'k1', [current]), {
    ok: true,
    claims: upstreamRound,
  });
});

test(`DN-INPUT-STATE-REFUSED: tampered, foreign-key, other-format and session-token states are refused; expired ones \
say so`, () => {
  const state = signRequestState(claims, [current]);
  const [prefix, payload, mac] = state.split('.') as [string, string, string];
  const changed = Buffer.from(
    JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), r: 2 }),
  ).toString('base64url');
  assert.deepEqual(verifyRequestState(`${prefix}.${changed}.${mac}`, 'k1', [current]), {
    ok: false,
    reason: 'bad-signature',
  });
  assert.deepEqual(verifyRequestState(`${state}x`, 'k1', [current]), { ok: false, reason: 'malformed' });
  assert.deepEqual(verifyRequestState(state, 'k2', [current]), { ok: false, reason: 'other-key' });
  assert.deepEqual(verifyRequestState('opaque-upstream-state', 'k1', [current]), { ok: false, reason: 'malformed' });
  // A session id is signed with the same keys; it must not pass for a request state, even re-labelled.
  const session = signSessionToken(
    { keyId: 'k1', protocolVersion: '2025-11-25', clientInfo: {}, clientCapabilities: {}, issuedAt: 1 },
    [current],
  );
  assert.equal(verifyRequestState(`pcrs1.${session}`, 'k1', [current]).ok, false);
  assert.deepEqual(
    verifyRequestState(signRequestState({ ...claims, expiresAt: Date.now() - 1 }, [current]), 'k1', [current]),
    { ok: false, reason: 'expired' },
  );
});
