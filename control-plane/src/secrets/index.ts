import { join } from 'node:path';
import { loadOrCreateSecretFile } from '../admin-token.ts';
import { generateSecretKeyText, parseSecretKey, SecretBox } from './secret-box.ts';

export {
  SecretBox,
  parseSecretKey,
  deriveKeyId,
  generateSecretKeyText,
  isSealed,
  sealedKeyId,
  SECRET_UNREADABLE,
  type SecretKey,
} from './secret-box.ts';
export {
  sealPlaintextAndCheck,
  resealAll,
  sealPairs,
  openPairs,
  sealBearer,
  openBearer,
  secretContext,
} from './upstream-secrets.ts';

export const SECRET_KEY_FILE = 'secret-key';

export interface SecretKeyOptions {
  /** PORTCULLIS_SECRET_KEY: 32 bytes as hex or base64, optionally `<kid>:<key>`. */
  secretKey?: string | undefined;
  /** PORTCULLIS_SECRET_KEYS_PREVIOUS (comma-separated): keys that still decrypt but no longer encrypt. */
  previousSecretKeys?: readonly string[] | undefined;
  dataDir: string;
}

/**
 * The box sealing upstream credentials: from `secretKey`, or (development) from the key generated
 * once into `<dataDir>/secret-key` (mode 0600). `generatedPath` is set when the file was used.
 */
export async function loadSecretBox(
  options: SecretKeyOptions,
): Promise<{ box: SecretBox; generatedPath: string | undefined }> {
  const previous = (options.previousSecretKeys ?? []).map((text, index) =>
    parseSecretKey(text, `previousSecretKeys.${index}`),
  );
  if (options.secretKey !== undefined)
    return { box: new SecretBox(parseSecretKey(options.secretKey, 'secretKey'), previous), generatedPath: undefined };
  const text = await loadOrCreateSecretFile(options.dataDir, SECRET_KEY_FILE, generateSecretKeyText, 'secretKey');
  const path = join(options.dataDir, SECRET_KEY_FILE);
  return { box: new SecretBox(parseSecretKey(text, path), previous), generatedPath: path };
}
