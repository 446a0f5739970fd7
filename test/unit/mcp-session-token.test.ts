import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EndedSessions } from '../../data-plane/src/mcp/ended-sessions.ts';
import { VerifiedSessionTokens, signSessionToken, verifySessionToken } from '../../data-plane/src/mcp/session-token.ts';
import { sessionKey } from '../support/mcp-server-harness.ts';

const claims = {
  keyId: 'k1',
  protocolVersion: '2025-11-25',
  clientInfo: { name: 'a', version: '1' },
  clientCapabilities: {},
  issuedAt: 1_700_000_000,
};

test('a token signed with the first key verifies under any list holding that key', () => {
  const first = sessionKey('first');
  const token = signSessionToken(claims, [first, sessionKey('second')]);
  const verified = verifySessionToken(token, [sessionKey('newer'), first]);
  assert.ok(verified.ok);
  const { nonce, ...rest } = verified.claims;
  assert.deepEqual(rest, { ...claims, signingKeyId: 'first' });
  assert.equal(typeof nonce, 'string');
  assert.notEqual(
    signSessionToken(claims, [first]),
    signSessionToken(claims, [first]),
    'two sessions opened in the same second differ',
  );
});

test('unknown signing keys, altered payloads or signatures and junk are refused with a reason', () => {
  const key = sessionKey('k');
  const token = signSessionToken(claims, [key]);
  const [payload, mac] = token.split('.') as [string, string];
  assert.deepEqual(verifySessionToken(token, [sessionKey('other')]), { ok: false, reason: 'unknown-signing-key' });
  assert.deepEqual(verifySessionToken(token, [{ id: 'k', secret: sessionKey('k').secret }]), {
    ok: false,
    reason: 'bad-signature',
  });
  const altered = Buffer.from(JSON.stringify({ ...claims, keyId: 'k2', sk: 'k' })).toString('base64url');
  assert.deepEqual(verifySessionToken(`${altered}.${mac}`, [key]), { ok: false, reason: 'bad-signature' });
  for (const junk of [
    '',
    'abc',
    `${payload}.`,
    `.${mac}`,
    `${payload}.${mac}.x`,
    `${payload}.${mac.slice(4)}`,
    `${'x'.repeat(9000)}.${mac}`,
  ]) {
    assert.equal(verifySessionToken(junk, [key]).ok, false, junk.slice(0, 40));
  }
  assert.throws(() => signSessionToken(claims, []));
});

test(`DN-SESSION-MAX-AGE: ended sessions are remembered until they would have expired, then swept, so the table stays \
bounded`, async () => {
  let now = 1_000_000_000_000;
  const maxAgeMs = 60_000;
  const ended = new EndedSessions(maxAgeMs, () => now);
  const claimsAt = (issuedAtMs: number) => ({
    keyId: 'k',
    protocolVersion: '2025-11-25',
    clientInfo: {},
    clientCapabilities: {},
    issuedAt: Math.floor(issuedAtMs / 1000),
    signingKeyId: 's',
  });
  const fresh = claimsAt(now);
  assert.equal(ended.expired(fresh), false);
  assert.equal(ended.expired(claimsAt(now - maxAgeMs)), true);
  for (let i = 0; i < 5_000; i += 1) ended.end(`payload${i}.sig${i}`, claimsAt(now));
  assert.equal(ended.has('payload7.sig7'), true);
  assert.equal(ended.has('other-payload.sig7'), true, 'keyed by the signature');
  assert.equal(ended.has('payload7.sig7x'), false);
  assert.equal(ended.size, 5_000, 'nothing expired yet, nothing swept');
  now += maxAgeMs + 1_000;
  for (let i = 0; i < 6_000; i += 1) ended.end(`late${i}.late-sig${i}`, claimsAt(now));
  assert.ok(ended.size <= 6_000, `the expired entries were swept (size ${ended.size})`);
  assert.equal(ended.has('payload7.sig7'), false);
  assert.equal(ended.has('late5999.late-sig5999'), true);
});

test(`verified session ids are remembered per key set: a hit needs the exact token, and a new key set (rotation) is \
verified afresh`, () => {
  const cache = new VerifiedSessionTokens(2);
  const old = sessionKey('old');
  const claims = { keyId: 'k1', protocolVersion: '2025-11-25', clientInfo: {}, clientCapabilities: {}, issuedAt: 1 };
  const token = signSessionToken(claims, [old]);
  const keys = [old];
  const first = cache.verify(token, keys);
  assert.ok(first.ok);
  const again = cache.verify(token, keys);
  assert.ok(again.ok && again.claims.keyId === 'k1');
  const [payload, mac] = token.split('.') as [string, string];
  const altered = `${payload}.${mac.slice(0, -2)}${mac.endsWith('AA') ? 'BB' : 'AA'}`;
  assert.deepEqual(
    cache.verify(altered, keys),
    { ok: false, reason: 'bad-signature' },
    'an altered id misses the cache',
  );
  assert.deepEqual(
    cache.verify(token, [sessionKey('new')]),
    { ok: false, reason: 'unknown-signing-key' },
    'once the key is rotated out the id is refused, cached or not',
  );
  for (let i = 0; i < 3; i += 1)
    assert.ok(
      cache.verify(signSessionToken({ ...claims, issuedAt: i + 2 }, [old]), keys).ok,
      'beyond its capacity the cache still verifies',
    );
});
