import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';

/**
 * Upstream credentials at rest: AES-256-GCM, one random 96-bit IV per value, sealed as the compact
 * string `v1.<kid>.<iv>.<ciphertext+tag>` (iv and ciphertext base64url). The key id travels with
 * each ciphertext so that keys can rotate: the current key seals, previous keys still open. The
 * additional authenticated data binds a ciphertext to where it is stored (upstream id and field),
 * so a ciphertext copied into another row or field does not open.
 */
export const SEALED_PREFIX = 'v1.';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
const SEALED_PATTERN = /^v1\.([A-Za-z0-9_-]{1,32})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]+)$/;

export interface SecretKey {
  /** Stored with every ciphertext; names the key in errors (never the key itself). */
  readonly kid: string;
  readonly key: Buffer;
}

/** The key id derived from key material: the first 8 hex characters of its SHA-256. */
export function deriveKeyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/**
 * Parses a key as given in PORTCULLIS_SECRET_KEY (or one entry of PORTCULLIS_SECRET_KEYS_PREVIOUS):
 * 32 bytes as 64 hex characters or as base64/base64url, optionally preceded by an explicit key id,
 * `<kid>:<key>`. Without one, the id is derived from the key (see `deriveKeyId`). `field` names the
 * option in errors; the key material is never echoed.
 */
export function parseSecretKey(text: string, field: string): SecretKey {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(':');
  const explicitKid = colon >= 0 ? trimmed.slice(0, colon) : undefined;
  const material = colon >= 0 ? trimmed.slice(colon + 1) : trimmed;
  if (explicitKid !== undefined && !KID_PATTERN.test(explicitKid)) {
    throw new PortcullisError(
      ErrorCode.BAD_CONFIG,
      `${field}: the key id before ":" must be 1-32 letters, digits, "_" or "-"`,
      { field },
    );
  }
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(material)) key = Buffer.from(material, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(material))
    key = Buffer.from(material.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key === undefined || key.length !== KEY_BYTES) {
    throw new PortcullisError(
      ErrorCode.BAD_CONFIG,
      `${field}: must be 32 random bytes as 64 hex characters or base64 (optionally "<kid>:<key>"); generate one ` +
        `with: openssl rand -base64 32`,
      { field },
    );
  }
  return { kid: explicitKid ?? deriveKeyId(key), key };
}

/** A fresh random key, base64, in the form `parseSecretKey` reads. */
export function generateSecretKeyText(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/** Whether a stored value is a sealed ciphertext (as opposed to a legacy plaintext). */
export function isSealed(value: string): boolean {
  return SEALED_PATTERN.test(value);
}

/** The key id a sealed value names, or undefined when it is not sealed. */
export function sealedKeyId(value: string): string | undefined {
  return SEALED_PATTERN.exec(value)?.[1];
}

export class SecretBox {
  private readonly keys = new Map<string, Buffer>();
  readonly currentKid: string;

  /** `current` seals and opens; `previous` only open. */
  constructor(current: SecretKey, previous: readonly SecretKey[] = []) {
    this.currentKid = current.kid;
    this.keys.set(current.kid, current.key);
    for (const key of previous) {
      const existing = this.keys.get(key.kid);
      if (existing && !existing.equals(key.key)) {
        throw new PortcullisError(
          ErrorCode.BAD_CONFIG,
          `two different secret keys have the key id "${key.kid}"; give each key its own id`,
          { field: 'previousSecretKeys' },
        );
      }
      if (!existing) this.keys.set(key.kid, key.key);
    }
  }

  /** The key ids this box can open. */
  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  canOpen(kid: string): boolean {
    return this.keys.has(kid);
  }

  /** Seals `plaintext` under the current key, bound to `context` (e.g. `upstream:<id>:env:NAME`). */
  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.currentKid)!, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${SEALED_PREFIX}${this.currentKid}.${iv.toString('base64url')}.${ciphertext.toString('base64url')}`;
  }

  /**
   * Opens a sealed value stored under `context`. Throws SECRET_UNREADABLE naming the key id (never
   * the value) when the value is malformed, the key is unknown, or it fails authentication.
   */
  open(sealed: string, context: string): string {
    const match = SEALED_PATTERN.exec(sealed);
    if (!match)
      throw unreadable(
        `a stored secret for ${context} is not in the sealed form v1.<kid>.<iv>.<ciphertext>`,
        undefined,
      );
    const [, kid, ivText, bodyText] = match as unknown as [string, string, string, string];
    const key = this.keys.get(kid);
    if (!key) {
      throw unreadable(
        `a stored secret for ${context} was encrypted under key id "${kid}", which is neither the current secret ` +
          `key ("${this.currentKid}") nor one of the previous keys; ` +
          'add that key to PORTCULLIS_SECRET_KEYS_PREVIOUS (previousSecretKeys)',
        kid,
      );
    }
    const body = Buffer.from(bodyText, 'base64url');
    if (body.length < TAG_BYTES) throw unreadable(`a stored secret for ${context} (key id "${kid}") is truncated`, kid);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(ivText, 'base64url'));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw unreadable(
        `a stored secret for ${context} failed authentication under key id "${kid}": it was altered, moved from ` +
          `another field, or that key id names a different key than it was sealed with`,
        kid,
      );
    }
  }

  /** Re-seals under the current key when `sealed` is under another one; undefined when already current. */
  reseal(sealed: string, context: string): string | undefined {
    if (sealedKeyId(sealed) === this.currentKid) return undefined;
    return this.seal(this.open(sealed, context), context);
  }
}

/** The error code of a secret that cannot be opened (a configuration problem of the control plane). */
export const SECRET_UNREADABLE = 'SECRET_UNREADABLE';

function unreadable(message: string, kid: string | undefined): PortcullisError {
  return new PortcullisError(SECRET_UNREADABLE, message, kid === undefined ? {} : { kid });
}
