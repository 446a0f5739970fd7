import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { PortcullisError, ErrorCode } from '../../common/src/index.ts';

export const ADMIN_TOKEN_FILE = 'admin-token';

/**
 * The admin token kept in `<dataDir>/admin-token` (mode 0600): read when present, generated once
 * otherwise, so restarts keep the same token.
 */
export async function loadOrCreateAdminToken(dataDir: string): Promise<string> {
  return loadOrCreateSecretFile(
    dataDir,
    ADMIN_TOKEN_FILE,
    () => `pca_${randomBytes(32).toString('base64url')}`,
    'adminToken',
  );
}

/**
 * A generated secret kept in `<dataDir>/<file>` (mode 0600): read when present, generated once with
 * `generate` otherwise. Processes racing here agree on the first one written.
 */
export async function loadOrCreateSecretFile(
  dataDir: string,
  file: string,
  generate: () => string,
  field: string,
): Promise<string> {
  const path = join(dataDir, file);
  const existing = await readToken(path, field);
  if (existing !== undefined) return existing;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const token = generate();
  try {
    await writeFile(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(path, 0o600);
    return token;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const raced = await readToken(path, field);
    if (raced !== undefined) return raced;
    throw error;
  }
}

async function readToken(path: string, field: string): Promise<string | undefined> {
  let content: string;
  try {
    content = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const token = content.trim();
  if (token.length === 0) {
    throw new PortcullisError(
      ErrorCode.BAD_CONFIG,
      `${path} is empty; delete it to have a new value generated, or write the value into it`,
      { field },
    );
  }
  return token;
}
