import type { AllowList } from './allow-list.ts';
import type { LimitRule } from './rate-limits.ts';

/** Who is calling: the virtual key a request authenticated with, and what it may do. */
export interface Principal {
  readonly keyId: string;
  readonly keyName: string;
  readonly teamId: string | undefined;
  /** The customer of the key's team, if it has one. */
  readonly customerId: string | undefined;
  readonly allowList: AllowList;
  /** The rate limits of the key, its team and the team's customer (all apply). */
  readonly limits: readonly LimitRule[];
  /** Who may have a budget above this key: `key:<id>`, `team:<id>`, `customer:<id>` (policy/budget-ledger.ts). */
  readonly owners: readonly string[];
}
