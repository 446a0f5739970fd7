import { createHmac, timingSafeEqual } from 'node:crypto';
import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';

/**
 * The one format of every token a node signs and any node verifies without a lookup (2025-era
 * session ids, 2026-07-28 request states, task ids):
 *
 *     <prefix><base64url(JSON payload)>.<base64url(HMAC-SHA256(key, label "\n" payload part))>
 *
 * - Domain-separated: the MAC covers the domain's label, so a token of one kind never passes for
 *   another, even though all are signed with the same session keys.
 * - Canonical: each token has exactly one accepted spelling. Both parts must be unpadded base64url
 *   whose decoding re-encodes to the same text (no `=`, no characters outside the alphabet, no
 *   stray trailing bits), so a token cannot be altered into a second valid one (an ended session
 *   id stays ended, a one-shot state stays one-shot).
 * - Rotating keys: the snapshot's session keys, the first signs, each valid one verifies (the
 *   payload names the key that signed it, `sk`), so tokens in flight survive a rotation.
 *
 * The payload is readable by whoever holds the token on purpose: it carries nothing they may not
 * know. Domains validate their own claims after the MAC has been checked.
 */
export interface TokenDomain {
  /** Put in front of the token, to tell its kind at a glance (may be empty). */
  readonly prefix: string;
  /** Covered by the MAC: what makes the domains' tokens distinct. */
  readonly label: string;
  /** Longer tokens are refused before any parsing. */
  readonly maxLength: number;
}

export const SESSION_ID_TOKENS: TokenDomain = Object.freeze({
  prefix: '',
  label: 'portcullis/session-id/v1',
  maxLength: 8192,
});
/** States longer than this are refused before any parsing (an upstream's own state rides inside). */
export const REQUEST_STATE_TOKENS: TokenDomain = Object.freeze({
  prefix: 'pcrs1.',
  label: 'portcullis/request-state/v1',
  maxLength: 256 * 1024,
});
export const TASK_ID_TOKENS: TokenDomain = Object.freeze({
  prefix: 'pct.',
  label: 'portcullis/task-id/v1',
  maxLength: 4096,
});

/** The payload field naming the signing key; reserved in every domain. */
const SIGNING_KEY_FIELD = 'sk';
const MAC_BYTES = 32;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export type TokenVerification =
  | { readonly ok: true; readonly payload: Record<string, unknown>; readonly signingKeyId: string }
  | { readonly ok: false; readonly reason: 'malformed' | 'unknown-signing-key' | 'bad-signature' };

function mac(domain: TokenDomain, secret: Uint8Array, payloadPart: string): Buffer {
  return createHmac('sha256', secret).update(domain.label).update('\n').update(payloadPart).digest();
}

/** The bytes of `text` when it is the one canonical unpadded base64url spelling of them, else undefined. */
export function decodeCanonicalBase64url(text: string): Buffer | undefined {
  if (!BASE64URL.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : undefined;
}

/** Signs `payload` (which must not hold `sk`) with `keys[0]`. */
export function signToken(domain: TokenDomain, payload: Record<string, unknown>, keys: readonly SigningKey[]): string {
  const key = keys[0];
  if (key === undefined) throw new Error('no session key to sign with');
  if (SIGNING_KEY_FIELD in payload) throw new Error(`"${SIGNING_KEY_FIELD}" is reserved in signed token payloads`);
  const payloadPart = Buffer.from(JSON.stringify({ ...payload, [SIGNING_KEY_FIELD]: key.id })).toString('base64url');
  return `${domain.prefix}${payloadPart}.${mac(domain, key.secret, payloadPart).toString('base64url')}`;
}

/**
 * Verifies a presented token of `domain`: shape and canonical encoding, a current signing key,
 * the MAC. The payload comes back without `sk` (as `signingKeyId`), to be validated by the domain.
 */
export function verifyToken(domain: TokenDomain, token: string, keys: readonly SigningKey[]): TokenVerification {
  if (token.length > domain.maxLength || !token.startsWith(domain.prefix)) return MALFORMED;
  const body = token.slice(domain.prefix.length);
  const dot = body.indexOf('.');
  if (dot <= 0 || dot !== body.lastIndexOf('.')) return MALFORMED;
  const payloadPart = body.slice(0, dot);
  const payloadBytes = decodeCanonicalBase64url(payloadPart);
  const signature = decodeCanonicalBase64url(body.slice(dot + 1));
  if (payloadBytes === undefined || signature === undefined || signature.length !== MAC_BYTES) return MALFORMED;
  let parsed: unknown;
  try {
    parsed = JSON.parse(payloadBytes.toString('utf8'));
  } catch {
    return MALFORMED;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return MALFORMED;
  const { [SIGNING_KEY_FIELD]: signingKeyId, ...payload } = parsed as Record<string, unknown>;
  if (typeof signingKeyId !== 'string') return MALFORMED;
  const key = keys.find((k) => k.id === signingKeyId);
  if (key === undefined) return { ok: false, reason: 'unknown-signing-key' };
  if (!timingSafeEqual(mac(domain, key.secret, payloadPart), signature)) return { ok: false, reason: 'bad-signature' };
  return { ok: true, payload, signingKeyId };
}

const MALFORMED: TokenVerification = Object.freeze({ ok: false, reason: 'malformed' });
