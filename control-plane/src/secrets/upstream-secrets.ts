import type { EntityManager } from 'typeorm';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import type { KeyValuePair, StoredSecretPair } from '../db/entities.ts';
import { sealedKeyId, type SecretBox } from './secret-box.ts';

export type SecretField = 'env' | 'header' | 'bearer';

/** What a ciphertext is bound to (its additional authenticated data). */
export function secretContext(upstreamId: string, field: SecretField, name?: string): string {
  return name === undefined ? `upstream ${upstreamId} ${field}` : `upstream ${upstreamId} ${field} ${name}`;
}

/** Seals each value (an empty value stays empty: there is nothing to hide, and it shows as not set). */
export function sealPairs(
  box: SecretBox,
  upstreamId: string,
  field: 'env' | 'header',
  pairs: readonly KeyValuePair[],
): StoredSecretPair[] {
  return pairs.map((pair) => ({
    name: pair.name,
    secret: pair.value === '' ? '' : box.seal(pair.value, secretContext(upstreamId, field, pair.name)),
  }));
}

export function openPairs(
  box: SecretBox,
  upstreamId: string,
  field: 'env' | 'header',
  pairs: readonly StoredSecretPair[],
): KeyValuePair[] {
  return pairs.map((pair) => ({
    name: pair.name,
    value: pair.secret === '' ? '' : box.open(pair.secret, secretContext(upstreamId, field, pair.name)),
  }));
}

export function sealBearer(box: SecretBox, upstreamId: string, token: string | null): string | null {
  return token === null || token === '' ? null : box.seal(token, secretContext(upstreamId, 'bearer'));
}

export function openBearer(box: SecretBox, upstreamId: string, sealed: string | null): string | null {
  return sealed === null ? null : box.open(sealed, secretContext(upstreamId, 'bearer'));
}

interface SecretRow {
  id: string;
  env: Array<StoredSecretPair | KeyValuePair>;
  headers: Array<StoredSecretPair | KeyValuePair>;
  bearer_token: string | null;
}

const isLegacyPair = (pair: StoredSecretPair | KeyValuePair): pair is KeyValuePair =>
  !('secret' in pair) && 'value' in pair;

/**
 * Startup step: seals every plaintext value still stored in the format before encryption
 * (`{name, value}` pairs), then checks that every stored ciphertext names a key this box holds and
 * opens (so a wrong key or an altered value stops the start with the key id, not a later snapshot).
 * Returns how many plaintext values were sealed and how many ciphertexts are under a previous key.
 */
export async function sealPlaintextAndCheck(
  manager: EntityManager,
  box: SecretBox,
): Promise<{ sealed: number; underPreviousKeys: number }> {
  return manager.transaction(async (tx) => {
    const rows: SecretRow[] = await tx.query(
      `SELECT id, env, headers, bearer_token FROM upstreams ORDER BY id FOR UPDATE`,
    );
    let sealed = 0;
    let underPreviousKeys = 0;
    const unknown = new Set<string>();
    for (const row of rows) {
      const check = (value: string, context: string) => {
        if (value === '') return;
        const kid = sealedKeyId(value) ?? '(none)';
        if (!box.canOpen(kid)) return unknown.add(kid);
        box.open(value, context);
        if (kid !== box.currentKid) underPreviousKeys++;
      };
      const convert = (field: 'env' | 'header', pairs: SecretRow['env']) =>
        pairs.map((pair): StoredSecretPair => {
          if (!isLegacyPair(pair)) {
            check(pair.secret, secretContext(row.id, field, pair.name));
            return pair;
          }
          if (pair.value !== '') sealed++;
          return sealPairs(box, row.id, field, [pair])[0]!;
        });
      const legacy = row.env.some(isLegacyPair) || row.headers.some(isLegacyPair);
      const env = convert('env', row.env);
      const headers = convert('header', row.headers);
      if (row.bearer_token !== null) check(row.bearer_token, secretContext(row.id, 'bearer'));
      if (legacy)
        await tx.query(`UPDATE upstreams SET env = $2, headers = $3 WHERE id = $1`, [
          row.id,
          JSON.stringify(env),
          JSON.stringify(headers),
        ]);
    }
    if (unknown.size > 0) {
      const kids = [...unknown].map((kid) => `"${kid}"`).join(', ');
      throw new PortcullisError(
        ErrorCode.BAD_CONFIG,
        `secretKey: stored upstream credentials were encrypted under key id ${kids}, which is neither the current ` +
          `secret key ("${box.currentKid}") nor a previous one; ` +
          'start with that key as PORTCULLIS_SECRET_KEY or add it to PORTCULLIS_SECRET_KEYS_PREVIOUS',
        { field: 'secretKey' },
      );
    }
    return { sealed, underPreviousKeys };
  });
}

/** Re-seals every stored credential not under the current key. Returns how many values were re-sealed. */
export async function resealAll(manager: EntityManager, box: SecretBox): Promise<number> {
  return manager.transaction(async (tx) => {
    const rows: Array<{
      id: string;
      env: StoredSecretPair[];
      headers: StoredSecretPair[];
      bearer_token: string | null;
    }> = await tx.query(`SELECT id, env, headers, bearer_token FROM upstreams ORDER BY id FOR UPDATE`);
    let count = 0;
    for (const row of rows) {
      let changed = false;
      const reseal = (field: 'env' | 'header', pairs: StoredSecretPair[]) =>
        pairs.map((pair) => {
          if (pair.secret === '') return pair;
          const next = box.reseal(pair.secret, secretContext(row.id, field, pair.name));
          if (next === undefined) return pair;
          changed = true;
          count++;
          return { name: pair.name, secret: next };
        });
      const env = reseal('env', row.env);
      const headers = reseal('header', row.headers);
      let bearer = row.bearer_token;
      if (bearer !== null) {
        const next = box.reseal(bearer, secretContext(row.id, 'bearer'));
        if (next !== undefined) {
          bearer = next;
          changed = true;
          count++;
        }
      }
      if (changed)
        await tx.query(`UPDATE upstreams SET env = $2, headers = $3, bearer_token = $4 WHERE id = $1`, [
          row.id,
          JSON.stringify(env),
          JSON.stringify(headers),
          bearer,
        ]);
    }
    return count;
  });
}
