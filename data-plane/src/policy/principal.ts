import type { CodeMode } from '../../../proto/gen/portcullis/v1/config.ts';
import type { AllowList } from './allow-list.ts';

/**
 * The person behind an OAuth access token (MCP authorization): its issuer and the subject its
 * claim mapping names. Audit records it as who made the call; a virtual key has none.
 */
export interface AgentIdentity {
  /** The token's `iss`, as configured. */
  readonly issuer: string;
  /** The value of the issuer's subject claim (default `sub`). */
  readonly subject: string;
}

/** Who is calling: the virtual key (or signed-in user) a request authenticated as, and what it may do. */
export interface Principal {
  /**
   * A virtual key's id; for a signed-in user, `oidc:` and a digest of issuer and subject, stable
   * across that user's tokens (sessions, streams and per-key limits are bound to it).
   */
  readonly keyId: string;
  /** The key's name; for a signed-in user, the subject. */
  readonly keyName: string;
  readonly teamId: string | undefined;
  /** The customer the team belongs to, when the claim mapping names one. */
  readonly customerId?: string;
  readonly allowList: AllowList;
  /** The key's code-mode setting; absent: INHERIT (each upstream's own). */
  readonly codeMode?: CodeMode;
  /** Set when the caller presented an OAuth access token instead of a virtual key. */
  readonly identity?: AgentIdentity;
}
