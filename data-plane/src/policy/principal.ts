import type { AllowList } from './allow-list.ts';

/** Who is calling: the virtual key a request authenticated with, and what it may do. */
export interface Principal {
  readonly keyId: string;
  readonly keyName: string;
  readonly teamId: string | undefined;
  /** The customer of the key's team, if it has one. */
  readonly customerId: string | undefined;
  readonly allowList: AllowList;
}
