import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signSessionToken, verifySessionToken } from '../../data-plane/src/mcp/session-token.ts';
import { sessionKey } from '../support/mcp-server-harness.ts';

const claims = { keyId: 'k1', protocolVersion: '2025-11-25', clientInfo: { name: 'a', version: '1' }, clientCapabilities: {}, issuedAt: 1_700_000_000 };

test('a token signed with the first key verifies under any list holding that key', () => {
  const first = sessionKey('first');
  const token = signSessionToken(claims, [first, sessionKey('second')]);
  const verified = verifySessionToken(token, [sessionKey('newer'), first]);
  assert.ok(verified.ok);
  const { nonce, ...rest } = verified.claims;
  assert.deepEqual(rest, { ...claims, signingKeyId: 'first' });
  assert.equal(typeof nonce, 'string');
  assert.notEqual(signSessionToken(claims, [first]), signSessionToken(claims, [first]), 'two sessions opened in the same second differ');
});

test('unknown signing keys, altered payloads or signatures and junk are refused with a reason', () => {
  const key = sessionKey('k');
  const token = signSessionToken(claims, [key]);
  const [payload, mac] = token.split('.') as [string, string];
  assert.deepEqual(verifySessionToken(token, [sessionKey('other')]), { ok: false, reason: 'unknown-signing-key' });
  assert.deepEqual(verifySessionToken(token, [{ id: 'k', secret: sessionKey('k').secret }]), { ok: false, reason: 'bad-signature' });
  const altered = Buffer.from(JSON.stringify({ ...claims, keyId: 'k2', signingKeyId: 'k' })).toString('base64url');
  assert.deepEqual(verifySessionToken(`${altered}.${mac}`, [key]), { ok: false, reason: 'bad-signature' });
  for (const junk of ['', 'abc', `${payload}.`, `.${mac}`, `${payload}.${mac}.x`, `${payload}.${mac.slice(4)}`, `${'x'.repeat(9000)}.${mac}`]) {
    assert.equal(verifySessionToken(junk, [key]).ok, false, junk.slice(0, 40));
  }
  assert.throws(() => signSessionToken(claims, []));
});
