import type { SessionClaims } from './session-token.ts';

/** How long a 2025-era session id is honoured after it was issued, unless the node is told otherwise. */
export const DEFAULT_SESSION_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** Never sweep a smaller table: below this, expired entries cost less than the sweep. */
const MIN_SWEEP_SIZE = 1_024;

/** An ended session still within its maximum age, as nodes tell each other about it. */
export interface EndedSession {
  readonly token: string;
  readonly keyId: string;
  /** When the id would have expired anyway (ms since the epoch). */
  readonly expiresAt: number;
}

/**
 * The 2025-era sessions ended (`DELETE /mcp`) on this node or, relayed through the control plane,
 * on any other. Session ids are self-contained signed
 * tokens, valid anywhere until they expire, so ending one means remembering it until the moment it
 * would have expired anyway: that bound (`maxAgeMs` after issue) is what keeps this table small.
 * Entries are keyed by the token's signature, which is unique per token.
 */
export class EndedSessions {
  private readonly ended = new Map<string, EndedSession>();
  private sweepAt = MIN_SWEEP_SIZE;

  constructor(
    readonly maxAgeMs: number = DEFAULT_SESSION_MAX_AGE_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the session is past its maximum age. */
  expired(claims: SessionClaims): boolean {
    return this.now() >= this.expiresAt(claims);
  }

  /** Whether the session was ended (here or on another node that told this one). */
  has(token: string): boolean {
    return this.ended.has(signatureOf(token));
  }

  /**
   * Ends the session for good: its id is refused from now until it would have expired. Undefined
   * when it was ended already or is past its age (nothing to tell other nodes).
   */
  end(token: string, claims: SessionClaims): EndedSession | undefined {
    const signature = signatureOf(token);
    const expiresAt = this.expiresAt(claims);
    if (this.ended.has(signature) || expiresAt <= this.now()) return undefined;
    const entry = { token, keyId: claims.keyId, expiresAt };
    this.ended.set(signature, entry);
    if (this.ended.size >= this.sweepAt) this.sweep();
    return entry;
  }

  /** The ended sessions that have not expired yet. */
  *live(): IterableIterator<EndedSession> {
    const now = this.now();
    for (const entry of this.ended.values()) if (entry.expiresAt > now) yield entry;
  }

  get size(): number {
    return this.ended.size;
  }

  private expiresAt(claims: SessionClaims): number {
    return claims.issuedAt * 1000 + this.maxAgeMs;
  }

  /** Drops entries whose session expired anyway; the next sweep waits until the table doubles. */
  private sweep(): void {
    const now = this.now();
    for (const [signature, entry] of this.ended) if (entry.expiresAt <= now) this.ended.delete(signature);
    this.sweepAt = Math.max(MIN_SWEEP_SIZE, this.ended.size * 2);
  }
}

function signatureOf(token: string): string {
  return token.slice(token.indexOf('.') + 1);
}
