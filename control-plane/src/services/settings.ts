import { randomBytes, randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';

/** The settings row holding the session signing keys: JSON `[{ id, secret (base64) }]`, the first signs. */
export const SESSION_KEYS_SETTING = 'session_signing_keys';

export interface StoredSigningKey {
  id: string;
  secret: Buffer;
}

/** Generates the session signing key on first start; replicas racing here agree on one. */
export async function ensureSessionKeys(dataSource: DataSource): Promise<void> {
  const value = JSON.stringify([{ id: randomUUID(), secret: randomBytes(32).toString('base64') }]);
  await dataSource.query(`INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, [
    SESSION_KEYS_SETTING,
    value,
  ]);
}

/** Reads the session signing keys (empty when not generated yet). */
export async function readSessionKeys(manager: EntityManager): Promise<StoredSigningKey[]> {
  const rows: Array<{ value: string }> = await manager.query(`SELECT value FROM settings WHERE key = $1`, [
    SESSION_KEYS_SETTING,
  ]);
  const raw = rows[0]?.value;
  if (raw === undefined) return [];
  const parsed = JSON.parse(raw) as Array<{ id: string; secret: string }>;
  return parsed.map((key) => ({ id: key.id, secret: Buffer.from(key.secret, 'base64') }));
}
