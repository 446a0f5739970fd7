import type { SigningKey } from '../../../proto/gen/portcullis/v1/config.ts';
import type { EndedSessions } from './ended-sessions.ts';
import { VerifiedSessionTokens, type SessionClaims } from './session-token.ts';

/** Which kind of 2025-era session a token must be: an `Mcp-Session-Id`, or a legacy `GET /sse` stream's. */
export type SessionKind = 'streamable-http' | 'sse';

/** Why a session id was refused (logged, never told to the agent beyond "Session not found"). */
export type SessionRefusal =
  | 'missing'
  | 'malformed'
  | 'unknown-signing-key'
  | 'bad-signature'
  | 'other-key'
  | 'other-transport'
  | 'ended'
  | 'expired';

export type SessionAdmission =
  | { readonly ok: true; readonly claims: SessionClaims }
  | { readonly ok: false; readonly reason: SessionRefusal };

/**
 * The one check of a 2025-era session id, wherever it is presented: `/mcp` (`Mcp-Session-Id`),
 * `POST /messages` (`sessionId=`), a POST relayed from another node, a cancel or an ended session
 * relayed between nodes. One set of rules: the token verifies under a current session key, it was
 * issued to the key presenting it, it is of the transport it is used on (a stream's token is no
 * `Mcp-Session-Id` and the reverse), it was not ended (here or on any node that said so), and it is
 * not past its maximum age.
 */
export class SessionGuard {
  private readonly tokens = new VerifiedSessionTokens();

  constructor(private readonly ended: EndedSessions) {}

  admit(
    token: string | null | undefined,
    keyId: string,
    sessionKeys: readonly SigningKey[],
    kind: SessionKind,
  ): SessionAdmission {
    if (token === undefined || token === null || token === '') return { ok: false, reason: 'missing' };
    const verified = this.tokens.verify(token, sessionKeys);
    if (!verified.ok) return verified;
    const claims = verified.claims;
    if (claims.keyId !== keyId) return { ok: false, reason: 'other-key' };
    if ((claims.streamId !== undefined) !== (kind === 'sse')) return { ok: false, reason: 'other-transport' };
    if (this.ended.has(token)) return { ok: false, reason: 'ended' };
    if (this.ended.expired(claims)) return { ok: false, reason: 'expired' };
    return verified;
  }
}
