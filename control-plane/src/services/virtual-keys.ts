import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { In, type EntityManager } from 'typeorm';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import {
  Team,
  VirtualKey,
  type AccessListsJson,
  type AuditContentName,
  type CodeModeName,
  type RateLimitsJson,
} from '../db/entities.ts';
import { withConfigChange, type ConfigStore } from './config-change.ts';
import { accessListFields, mergeAccessLists, rateLimitsInput, storedRateLimits } from './access-lists.ts';
import { MAX_PAGE_SIZE, keysetPage, type Page } from './pagination.ts';
import { badInput, parseId, parseInput } from './validation.ts';

export const SECRET_PREFIX = 'pcs_';
/** Characters of the secret kept to tell keys apart: "pcs_" plus 8 of the 43 random ones. */
const SHOWN_PREFIX_LENGTH = 12;
export { allowedToolProblem } from './access-lists.ts';
/** The longest grace period a rotation may give the old secret: 30 days. */
export const MAX_GRACE_SECONDS = 30 * 24 * 3600;
/** Keys one createVirtualKeys call may create. */
export const MAX_KEYS_PER_BATCH = 1000;
/** Rows per INSERT statement (keeps the statement's parameters well under Postgres' limit). */
const INSERT_CHUNK = 500;

const keyName = z
  .string()
  .trim()
  .min(1, 'is empty; give the key a name people recognize, e.g. "ci-bot"')
  .max(128, 'is longer than 128 characters; shorten it');

/** A time a key stops working: a valid date in the future (disable or revoke a key to stop it now). */
const expiresAt = z
  .date('must be an ISO 8601 date and time')
  .refine((date) => date.getTime() > Date.now(), 'is in the past; give a future time, or disable or revoke the key')
  .refine(
    (date) => date.getUTCFullYear() < 10000,
    'is after the year 9999; leave expiresAt out for a key that never expires',
  );

const auditContentMode = z.enum(
  ['INHERIT', 'ON', 'OFF'],
  'must be one of INHERIT (the gateway default, auditSettings.contentDefault), ON, OFF',
);

/** What a key has besides its name, the same whether it is created or updated. */
const keySettingFields = {
  teamId: z.string().nullish(),
  ...accessListFields,
  rateLimits: rateLimitsInput.nullish(),
  expiresAt: expiresAt.nullish(),
  codeMode: z.enum(['INHERIT', 'ON', 'OFF'], 'must be one of INHERIT, ON, OFF').nullish(),
  auditContent: auditContentMode.nullish(),
};

const createVirtualKeySchema = z.object({ name: keyName, ...keySettingFields });

const updateVirtualKeySchema = z.object({ name: keyName.optional(), ...keySettingFields }).strict();

const gracePeriodSeconds = z
  .number()
  .int('must be a whole number of seconds')
  .min(0, 'must not be negative; 0 stops the old secret at once')
  .max(MAX_GRACE_SECONDS, `is longer than 30 days (${MAX_GRACE_SECONDS} s); rotate again later instead`);

export interface VirtualKeyView {
  id: string;
  name: string;
  prefix: string;
  teamId: string | null;
  allowedTools: string[];
  codeMode: CodeModeName;
  auditContent: AuditContentName;
  access: AccessListsJson;
  rateLimits: RateLimitsJson;
  enabled: boolean;
  expiresAt: Date | null;
  rotatedAt: Date | null;
  previousSecretExpiresAt: Date | null;
  revokedAt: Date | null;
  createdAt: Date;
}

export function toVirtualKeyView(key: VirtualKey): VirtualKeyView {
  return {
    id: key.id,
    name: key.name,
    prefix: key.prefix,
    teamId: key.teamId,
    allowedTools: key.allowedTools,
    codeMode: key.codeMode,
    auditContent: key.auditContent,
    access: key.access,
    rateLimits: key.rateLimits,
    enabled: key.enabled,
    expiresAt: key.expiresAt,
    rotatedAt: key.rotatedAt,
    previousSecretExpiresAt: key.previousSecretExpiresAt,
    revokedAt: key.revokedAt,
    createdAt: key.createdAt,
  };
}

function newSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64url');
}

/** SHA-256 of a secret: the only form in which it is stored. */
export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export class VirtualKeyService {
  constructor(private readonly store: ConfigStore) {}

  /** Creates a key. The secret is returned here once and never stored. */
  async create(rawInput: unknown): Promise<{ key: VirtualKeyView; secret: string }> {
    const [created] = await this.createKeys([rawInput], 'input');
    return created!;
  }

  /**
   * Creates up to MAX_KEYS_PER_BATCH keys in one transaction and one configuration revision (one
   * snapshot for the nodes, not one per key). All or none: a bad entry names its index.
   */
  async createMany(rawInputs: readonly unknown[]): Promise<Array<{ key: VirtualKeyView; secret: string }>> {
    if (rawInputs.length === 0) throw badInput('inputs', 'is empty; give at least one key to create');
    if (rawInputs.length > MAX_KEYS_PER_BATCH)
      throw badInput('inputs', `has ${rawInputs.length} entries; create at most ${MAX_KEYS_PER_BATCH} keys per call`);
    return this.createKeys(rawInputs, 'inputs');
  }

  private async createKeys(
    rawInputs: readonly unknown[],
    field: string,
  ): Promise<Array<{ key: VirtualKeyView; secret: string }>> {
    const single = field === 'input';
    const prepared = rawInputs.map((raw, index) => {
      const where = single ? field : `${field}.${index}`;
      const input = parseInput(createVirtualKeySchema, raw, where);
      const teamId = input.teamId ? parseId(input.teamId, `${where}.teamId`) : null;
      const secret = newSecret();
      const { allowedTools, ...lists } = input;
      const key = Object.assign(new VirtualKey(), {
        id: randomUUID(),
        name: input.name,
        prefix: secret.slice(0, SHOWN_PREFIX_LENGTH),
        secretSha256: hashSecret(secret),
        teamId,
        allowedTools: allowedTools ?? ['*'],
        codeMode: input.codeMode ?? 'INHERIT',
        auditContent: input.auditContent ?? 'INHERIT',
        access: mergeAccessLists({}, { ...lists, allowedTools: undefined }),
        rateLimits: input.rateLimits ? storedRateLimits(input.rateLimits) : {},
        enabled: true,
        expiresAt: input.expiresAt ?? null,
        previousSecretSha256: null,
        previousSecretExpiresAt: null,
        rotatedAt: null,
        revokedAt: null,
        createdAt: new Date(),
      });
      return { key, secret, where };
    });
    await withConfigChange(this.store, async (manager) => {
      const teamIds = [...new Set(prepared.flatMap((p) => (p.key.teamId ? [p.key.teamId] : [])))];
      const known = new Set(
        (teamIds.length ? await manager.findBy(Team, { id: In(teamIds) }) : []).map((team) => team.id),
      );
      const unknown = prepared.find((p) => p.key.teamId && !known.has(p.key.teamId));
      if (unknown) throw unknownTeam(unknown.key.teamId!, `${unknown.where}.teamId`);
      for (let i = 0; i < prepared.length; i += INSERT_CHUNK) {
        await manager.insert(
          VirtualKey,
          prepared.slice(i, i + INSERT_CHUNK).map((p) => p.key),
        );
      }
      return { result: undefined, changed: true };
    });
    return prepared.map(({ key, secret }) => ({ key: toVirtualKeyView(key), secret }));
  }

  /**
   * Revokes a key for good; revoking a revoked key changes nothing and returns it as it is. Only
   * when the update matches nothing is the key looked up, to tell a revoked key from a missing one.
   */
  async revoke(rawId: string): Promise<VirtualKeyView> {
    const id = parseId(rawId, 'id');
    const revoked = await withConfigChange(this.store, async (manager) => {
      // Through a CTE: TypeORM returns [rows, count] for a bare UPDATE, plain rows for a SELECT.
      const rows: unknown[] = await manager.query(
        `WITH r AS (UPDATE virtual_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id) ` +
          `SELECT * FROM r`,
        [id],
      );
      // The whole of this change's effect on the configuration: the key is no longer live.
      return { result: rows.length > 0, changed: rows.length > 0, known: { removedKeyIds: [id] } };
    });
    const key = await this.store.dataSource.getRepository(VirtualKey).findOneBy({ id });
    if (!key) throw notFound(id);
    if (revoked && key.revokedAt === null) key.revokedAt = new Date();
    return toVirtualKeyView(key);
  }

  /** Changes the given fields of a live key (see UpdateVirtualKeyInput); nodes get it with the next revision. */
  async update(rawId: string, rawInput: unknown): Promise<VirtualKeyView> {
    const id = parseId(rawId, 'id');
    const input = parseInput(updateVirtualKeySchema, rawInput, 'input');
    const teamId = input.teamId ? parseId(input.teamId, 'input.teamId') : input.teamId;
    return withConfigChange(this.store, async (manager) => {
      const key = await this.liveKey(manager, id);
      if (teamId) await requireTeam(manager, teamId, 'input.teamId');
      if (input.name !== undefined) key.name = input.name;
      if (teamId !== undefined) key.teamId = teamId;
      if (input.allowedTools !== undefined) key.allowedTools = input.allowedTools ?? ['*'];
      const { allowedTools: _tools, ...lists } = input;
      key.access = mergeAccessLists(key.access, lists);
      if (input.rateLimits !== undefined) key.rateLimits = input.rateLimits ? storedRateLimits(input.rateLimits) : {};
      if (input.expiresAt !== undefined) key.expiresAt = input.expiresAt;
      if (input.codeMode != null) key.codeMode = input.codeMode;
      if (input.auditContent != null) key.auditContent = input.auditContent;
      await manager.save(VirtualKey, key);
      return { result: toVirtualKeyView(key), changed: true };
    });
  }

  /**
   * Gives a key a new secret (returned here once); the old one keeps working for
   * `gracePeriodSeconds` (0: not at all), so agents can be moved over without an outage.
   */
  async rotate(rawId: string, rawGrace: unknown): Promise<{ key: VirtualKeyView; secret: string }> {
    const id = parseId(rawId, 'id');
    const grace = parseInput(gracePeriodSeconds, rawGrace ?? 0, 'gracePeriodSeconds');
    const secret = newSecret();
    const key = await withConfigChange(this.store, async (manager) => {
      const key = await this.liveKey(manager, id);
      const now = new Date();
      key.previousSecretSha256 = grace > 0 ? key.secretSha256 : null;
      key.previousSecretExpiresAt = grace > 0 ? new Date(now.getTime() + grace * 1000) : null;
      key.secretSha256 = hashSecret(secret);
      key.prefix = secret.slice(0, SHOWN_PREFIX_LENGTH);
      key.rotatedAt = now;
      await manager.save(VirtualKey, key);
      return { result: key, changed: true };
    });
    return { key: toVirtualKeyView(key), secret };
  }

  /** Disables (nodes refuse it like an unknown key) or enables a live key again. */
  async setEnabled(rawId: string, enabled: unknown): Promise<VirtualKeyView> {
    const id = parseId(rawId, 'id');
    const value = parseInput(z.boolean('must be true or false'), enabled, 'enabled');
    return withConfigChange(this.store, async (manager) => {
      const key = await this.liveKey(manager, id);
      if (key.enabled === value) return { result: toVirtualKeyView(key), changed: false };
      key.enabled = value;
      await manager.save(VirtualKey, key);
      return { result: toVirtualKeyView(key), changed: true };
    });
  }

  async get(rawId: string): Promise<VirtualKeyView | null> {
    const key = await this.store.dataSource.getRepository(VirtualKey).findOneBy({ id: parseId(rawId, 'id') });
    return key && toVirtualKeyView(key);
  }

  /** The key, locked for this change; NOT_FOUND when missing, CONFLICT when revoked (revocation is final). */
  private async liveKey(manager: EntityManager, id: string): Promise<VirtualKey> {
    const key = await manager.findOne(VirtualKey, { where: { id }, lock: { mode: 'pessimistic_write' } });
    if (!key) throw notFound(id);
    if (key.revokedAt !== null)
      throw new PortcullisError(
        ErrorCode.CONFLICT,
        `id: virtual key "${id}" is revoked, which is final; create a new key instead`,
        { field: 'id' },
      );
    return key;
  }

  /** Keys in creation order, one page (see `Page`). */
  async list(page: Page = { first: MAX_PAGE_SIZE, after: null }): Promise<VirtualKeyView[]> {
    const repository = this.store.dataSource.getRepository(VirtualKey);
    const order = {
      alias: 'k',
      property: 'createdAt',
      column: 'created_at',
      table: 'virtual_keys',
      what: 'virtual key',
    };
    return (await keysetPage(repository, order, page)).map(toVirtualKeyView);
  }
}

function notFound(id: string): PortcullisError {
  return new PortcullisError(
    ErrorCode.NOT_FOUND,
    `id: no virtual key has id "${id}"; list them with the virtualKeys query`,
    { field: 'id' },
  );
}

function unknownTeam(teamId: string, field: string): PortcullisError {
  return badInput(field, `no team has id "${teamId}"; create one with createTeam or leave teamId out`);
}

async function requireTeam(manager: EntityManager, teamId: string, field: string): Promise<void> {
  if (!(await manager.existsBy(Team, { id: teamId }))) throw unknownTeam(teamId, field);
}
