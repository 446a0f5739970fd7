import type { CodeMode } from '../../../proto/gen/portcullis/v1/config.ts';
import type { AllowList } from './allow-list.ts';

/** Who is calling: the virtual key a request authenticated with, and what it may do. */
export interface Principal {
  readonly keyId: string;
  readonly keyName: string;
  readonly teamId: string | undefined;
  readonly allowList: AllowList;
  /** The key's code-mode setting; absent: INHERIT (each upstream's own). */
  readonly codeMode?: CodeMode;
}
