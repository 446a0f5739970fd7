import { LRUCache } from 'lru-cache';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';

/**
 * What a 2025-era session negotiated, carried inside its `Mcp-Session-Id`. Any node holding the
 * session keys verifies it without a lookup: nothing about a session lives in one node's memory.
 */
export interface SessionClaims {
  /** The virtual key the session was opened with; later requests must authenticate as the same key. */
  readonly keyId: string;
  readonly protocolVersion: string;
  readonly clientInfo: unknown;
  readonly clientCapabilities: unknown;
  /** Seconds since the epoch. */
  readonly issuedAt: number;
  /** Random, so that two sessions of one key opened in the same second get distinct ids. */
  readonly nonce?: string;
  /** Id of the session key that signed the token. */
  readonly signingKeyId: string;
  /**
   * Legacy HTTP+SSE transport sessions only: the id of the `GET /sse` stream on the node holding it
   * (`POST /messages?sessionId=` must reach that node). Such tokens are refused as `Mcp-Session-Id`.
   */
  readonly streamId?: string;
  /**
   * Legacy HTTP+SSE transport sessions only: the tag (of its hello) of the node process holding the
   * stream, so that a POST landing on another node is relayed there through the control plane.
   */
  readonly nodeTag?: string;
}

export type SessionVerification =
  | { readonly ok: true; readonly claims: SessionClaims }
  | { readonly ok: false; readonly reason: 'malformed' | 'unknown-signing-key' | 'bad-signature' };

/** Tokens longer than this are refused before any parsing (headers are bounded anyway). */
const MAX_TOKEN_LENGTH = 8192;
const MAC_BYTES = 32;

function mac(secret: Uint8Array, payload: string): Buffer {
  return createHmac('sha256', secret).update(payload).digest();
}

/** `base64url(JSON claims).base64url(HMAC-SHA256(first part))`, signed with `keys[0]`. */
export function signSessionToken(claims: Omit<SessionClaims, 'signingKeyId'>, keys: readonly SigningKey[]): string {
  const key = keys[0];
  if (key === undefined) throw new Error('no session key to sign with');
  const full: SessionClaims = { nonce: randomBytes(9).toString('base64url'), ...claims, signingKeyId: key.id };
  const payload = Buffer.from(JSON.stringify(full)).toString('base64url');
  return `${payload}.${mac(key.secret, payload).toString('base64url')}`;
}

/** `base64url(payload).base64url(HMAC-SHA256)` split into its parts; undefined when it is not that shape. */
export function splitSignedToken(token: string): { payload: string; signature: Buffer } | undefined {
  const dot = token.indexOf('.');
  if (dot <= 0 || dot !== token.lastIndexOf('.')) return undefined;
  const signature = Buffer.from(token.slice(dot + 1), 'base64url');
  return signature.length === MAC_BYTES ? { payload: token.slice(0, dot), signature } : undefined;
}

/** Verifies a presented session id against every current session key (the first signs, all verify). */
export function verifySessionToken(token: string, keys: readonly SigningKey[]): SessionVerification {
  if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: 'malformed' };
  const parts = splitSignedToken(token);
  if (parts === undefined) return { ok: false, reason: 'malformed' };
  const { payload, signature } = parts;
  let claims: SessionClaims;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as SessionClaims;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (claims === null || typeof claims !== 'object' || typeof claims.signingKeyId !== 'string' || typeof claims.keyId !== 'string' || typeof claims.protocolVersion !== 'string') {
    return { ok: false, reason: 'malformed' };
  }
  const key = keys.find((k) => k.id === claims.signingKeyId);
  if (key === undefined) return { ok: false, reason: 'unknown-signing-key' };
  if (!timingSafeEqual(mac(key.secret, payload), signature)) return { ok: false, reason: 'bad-signature' };
  return { ok: true, claims };
}

/**
 * Session ids this node verified, for the key set they were verified under: a 2025-era agent sends
 * its id with every request, and the HMAC (its key preparation above all) was a sixth of the node's
 * CPU per call under load. A hit needs the exact token text, so a forged or altered id always
 * misses and is verified in full; a new key set (any new snapshot) starts the cache afresh.
 */
export class VerifiedSessionTokens {
  private keys: readonly SigningKey[] | undefined;
  private readonly verified: LRUCache<string, SessionClaims>;

  constructor(max = 10_000) {
    this.verified = new LRUCache({ max });
  }

  verify(token: string, keys: readonly SigningKey[]): SessionVerification {
    if (keys !== this.keys) {
      this.verified.clear();
      this.keys = keys;
    }
    const hit = this.verified.get(token);
    if (hit !== undefined) return { ok: true, claims: hit };
    const result = verifySessionToken(token, keys);
    if (!result.ok) return result;
    this.verified.set(token, result.claims);
    return result;
  }
}
