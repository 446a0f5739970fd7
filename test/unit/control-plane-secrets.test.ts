import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SecretBox, deriveKeyId, parseSecretKey, sealedKeyId } from '../../control-plane/src/secrets/index.ts';

const keyBytes = randomBytes(32);
const other = randomBytes(32);

describe('parseSecretKey', () => {
  it('reads 32 bytes as hex, base64 or base64url, with a derived or explicit key id', () => {
    const expectedKid = createHash('sha256').update(keyBytes).digest('hex').slice(0, 8);
    for (const text of [
      keyBytes.toString('hex'),
      keyBytes.toString('base64'),
      keyBytes.toString('base64url'),
      ` ${keyBytes.toString('base64')}\n`,
    ]) {
      const key = parseSecretKey(text, 'secretKey');
      assert.ok(key.key.equals(keyBytes), text);
      assert.equal(key.kid, expectedKid);
    }
    assert.equal(deriveKeyId(keyBytes), expectedKid);
    const explicit = parseSecretKey(`2026-01:${keyBytes.toString('hex')}`, 'secretKey');
    assert.equal(explicit.kid, '2026-01');
    assert.ok(explicit.key.equals(keyBytes));
  });

  it('refuses other lengths and bad key ids with BAD_CONFIG naming the option, never echoing the key', () => {
    const short = randomBytes(16).toString('hex');
    for (const text of [
      short,
      randomBytes(33).toString('base64'),
      'not a key',
      `bad.kid:${keyBytes.toString('hex')}`,
      '',
    ]) {
      assert.throws(
        () => parseSecretKey(text, 'previousSecretKeys.1'),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'BAD_CONFIG');
          assert.match(error.message, /^previousSecretKeys\.1: /);
          if (text.length > 8) assert.ok(!error.message.includes(text.replace(/^.*:/, '')), 'the key is not echoed');
          return true;
        },
      );
    }
  });
});

describe('SecretBox', () => {
  const current = parseSecretKey(keyBytes.toString('hex'), 'secretKey');
  const previous = parseSecretKey(`old:${other.toString('hex')}`, 'previousSecretKeys.0');

  it('seals as v1.<kid>.<iv>.<ct+tag> with a fresh IV each time, and opens it', () => {
    const box = new SecretBox(current);
    const a = box.seal('hunter2-token', 'upstream u env TOKEN');
    const b = box.seal('hunter2-token', 'upstream u env TOKEN');
    assert.match(a, new RegExp(`^v1\\.${current.kid}\\.[A-Za-z0-9_-]{16}\\.[A-Za-z0-9_-]+$`));
    assert.notEqual(a, b, 'a random IV per value');
    assert.ok(
      !a.includes('hunter2') && !Buffer.from(a.split('.')[3]!, 'base64url').toString('latin1').includes('hunter2'),
    );
    assert.equal(box.open(a, 'upstream u env TOKEN'), 'hunter2-token');
    assert.equal(box.open(box.seal('', 'c'), 'c'), '');
    assert.equal(sealedKeyId(a), current.kid);
  });

  it('opens values sealed under a previous key, seals only under the current one, and re-seals', () => {
    const old = new SecretBox(previous);
    const sealedOld = old.seal('rotated-value', 'ctx');
    const box = new SecretBox(current, [previous]);
    assert.equal(box.open(sealedOld, 'ctx'), 'rotated-value');
    assert.equal(sealedKeyId(box.seal('x', 'ctx')), current.kid);
    const resealed = box.reseal(sealedOld, 'ctx')!;
    assert.equal(sealedKeyId(resealed), current.kid);
    assert.equal(new SecretBox(current).open(resealed, 'ctx'), 'rotated-value');
    assert.equal(box.reseal(resealed, 'ctx'), undefined, 'already under the current key');
  });

  it('refuses an unknown key id, naming it and the fix, never the value', () => {
    const sealed = new SecretBox(previous).seal('do-not-show', 'upstream u header X-Api-Key');
    assert.throws(
      () => new SecretBox(current).open(sealed, 'upstream u header X-Api-Key'),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'SECRET_UNREADABLE');
        assert.match(
          error.message,
          /key id "old".*current secret key \("[0-9a-f]{8}"\).*PORTCULLIS_SECRET_KEYS_PREVIOUS/,
        );
        assert.ok(!error.message.includes('do-not-show') && !error.message.includes(sealed));
        return true;
      },
    );
  });

  it('detects tampering: altered ciphertext, IV, tag, a moved value, or a key id naming another key', () => {
    const box = new SecretBox(current, [previous]);
    const sealed = box.seal('integrity-matters', 'upstream a env TOKEN');
    const [v, kid, iv, body] = sealed.split('.') as [string, string, string, string];
    const flip = (text: string, at: number) => {
      const bytes = Buffer.from(text, 'base64url');
      bytes[at] = bytes[at]! ^ 1;
      return bytes.toString('base64url');
    };
    const attempts: Array<[string, string]> = [
      [[v, kid, iv, flip(body, 0)].join('.'), 'upstream a env TOKEN'],
      [[v, kid, iv, flip(body, Buffer.from(body, 'base64url').length - 1)].join('.'), 'upstream a env TOKEN'],
      [[v, kid, flip(iv, 3), body].join('.'), 'upstream a env TOKEN'],
      [[v, 'old', iv, body].join('.'), 'upstream a env TOKEN'],
      [sealed, 'upstream b env TOKEN'],
      [sealed, 'upstream a env OTHER'],
      [[v, kid, iv, body.slice(0, 10)].join('.'), 'upstream a env TOKEN'],
      ['plaintext', 'upstream a env TOKEN'],
    ];
    for (const [value, context] of attempts) {
      assert.throws(
        () => box.open(value, context),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'SECRET_UNREADABLE', value);
          assert.ok(!error.message.includes('integrity-matters'));
          return true;
        },
      );
    }
    assert.equal(box.open(sealed, 'upstream a env TOKEN'), 'integrity-matters', 'the untouched value still opens');
  });

  it('refuses two different keys under one key id', () => {
    assert.throws(
      () => new SecretBox(current, [{ kid: current.kid, key: other }]),
      /two different secret keys have the key id/,
    );
  });
});
