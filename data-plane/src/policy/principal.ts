import type { AuditContent, CodeMode } from '../../../proto/gen/portcullis/v1/config.ts';
import type { AllowList } from './allow-list.ts';
import type { LimitRule } from './rate-limits.ts';

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
  /** The customer of the key's team, or the one an OAuth claim mapping names. */
  readonly customerId?: string | undefined;
  readonly allowList: AllowList;
  /** The key's code-mode setting; absent: INHERIT (each upstream's own). */
  readonly codeMode?: CodeMode;
  /** The key's content-logging setting (audit/audit-content.ts); absent: INHERIT. */
  readonly auditContent?: AuditContent;
  /** The rate limits of the key, its team and the team's customer (all apply); absent: none. */
  readonly limits?: readonly LimitRule[];
  /**
   * Who may have a budget above this key: `key:<id>`, `team:<id>`, `customer:<id>` (policy/budget-ledger.ts); absent:
   * none.
   */
  readonly owners?: readonly string[];
  /** Set when the caller presented an OAuth access token instead of a virtual key. */
  readonly identity?: AgentIdentity;
}
