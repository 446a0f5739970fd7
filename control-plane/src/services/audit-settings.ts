import type { EntityManager } from 'typeorm';
import { z } from 'zod';
import type { AuditSettingsConfig } from '../../../proto/gen/portcullis/v1/config.ts';
import { withConfigChange, type ConfigStore } from './config-change.ts';
import { parseInput } from './validation.ts';

/** The settings row holding the gateway-wide audit settings (JSON of `AuditSettingsView`); absent: the defaults. */
export const AUDIT_SETTINGS_SETTING = 'audit_settings';

/**
 * Gateway-wide audit settings. `contentDefault`: whether arguments and results are recorded for keys whose
 * `auditContent` is INHERIT (true unless set). A key's ON or OFF overrides it; an upstream's `auditContent:
 * false` switches content off for every key.
 */
export interface AuditSettingsView {
  contentDefault: boolean;
}

export const DEFAULT_AUDIT_SETTINGS: AuditSettingsView = { contentDefault: true };

const inputSchema = z
  .object({
    contentDefault: z
      .boolean('must be true (record arguments and results) or false (never, unless a key says ON)')
      .nullish(),
  })
  .strict();

const storedSchema = z.object({ contentDefault: z.boolean() });

/** The stored settings (a settings row's value, or null) as the snapshot carries them. */
export function toAuditSettingsConfig(value: string | null): AuditSettingsConfig {
  const view = value === null ? DEFAULT_AUDIT_SETTINGS : storedSchema.parse(JSON.parse(value));
  return { contentOffByDefault: !view.contentDefault };
}

/** The settings `setAuditSettings` would store for this input over `current` (checked). */
export function auditSettingsView(rawInput: unknown, current: AuditSettingsView): AuditSettingsView {
  const input = parseInput(inputSchema, rawInput, 'input');
  return { contentDefault: input.contentDefault ?? current.contentDefault };
}

/** The stored settings, read through `manager` (the defaults when none are stored). */
export async function readAuditSettings(manager: EntityManager): Promise<AuditSettingsView> {
  const rows: Array<{ value: string }> = await manager.query(`SELECT value FROM settings WHERE key = $1`, [
    AUDIT_SETTINGS_SETTING,
  ]);
  return rows[0] === undefined ? { ...DEFAULT_AUDIT_SETTINGS } : storedSchema.parse(JSON.parse(rows[0].value));
}

/** Reads and changes the gateway-wide audit settings; a change reaches nodes in the next snapshot. */
export class AuditSettingsService {
  constructor(private readonly store: ConfigStore) {}

  async get(): Promise<AuditSettingsView> {
    return readAuditSettings(this.store.dataSource.manager);
  }

  /** Changes the fields given (null or omitted: unchanged); the revision moves only when something changed. */
  async set(rawInput: unknown): Promise<AuditSettingsView> {
    parseInput(inputSchema, rawInput, 'input');
    return withConfigChange(this.store, async (manager) => {
      const current = await readAuditSettings(manager);
      const next = auditSettingsView(rawInput, current);
      if (next.contentDefault === current.contentDefault) return { result: next, changed: false };
      await manager.query(
        `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [AUDIT_SETTINGS_SETTING, JSON.stringify(next)],
      );
      return { result: next, changed: true };
    });
  }
}
