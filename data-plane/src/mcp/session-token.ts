import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';
import { SESSION_ID_TOKENS, signToken, verifyToken } from './signed-token.ts';

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

const SessionPayload = z.object({
  keyId: z.string(),
  protocolVersion: z.string(),
  // Absent in legacy SSE sessions' tokens (nothing is negotiated before the stream opens).
  clientInfo: z.unknown().optional(),
  clientCapabilities: z.unknown().optional(),
  issuedAt: z.number(),
  nonce: z.string().optional(),
  streamId: z.string().optional(),
  nodeTag: z.string().optional(),
});

/** A signed token of the session-id domain (see signed-token.ts) carrying the claims, signed with `keys[0]`. */
export function signSessionToken(claims: Omit<SessionClaims, 'signingKeyId'>, keys: readonly SigningKey[]): string {
  return signToken(SESSION_ID_TOKENS, { nonce: randomBytes(9).toString('base64url'), ...claims }, keys);
}

/** Verifies a presented session id against every current session key (the first signs, all verify). */
export function verifySessionToken(token: string, keys: readonly SigningKey[]): SessionVerification {
  const verified = verifyToken(SESSION_ID_TOKENS, token, keys);
  if (!verified.ok) return verified;
  const claims = SessionPayload.safeParse(verified.payload);
  if (!claims.success) return { ok: false, reason: 'malformed' };
  return { ok: true, claims: { ...definedOnly(claims.data), signingKeyId: verified.signingKeyId } as SessionClaims };
}

/** The entries whose value is defined (optional claims are absent, not undefined). */
function definedOnly<T extends Record<string, unknown>>(entries: T): T {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(entries)) if (entries[key] !== undefined) out[key] = entries[key];
  return out as T;
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
