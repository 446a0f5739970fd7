import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { In } from 'typeorm';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { Team, VirtualKey, type CodeModeName } from '../db/entities.ts';
import { withConfigChange, type ConfigStore } from './config-change.ts';
import { UPSTREAM_NAME_PATTERN } from './upstreams.ts';
import { MAX_PAGE_SIZE, unknownCursor, type Page } from './pagination.ts';
import { badInput, parseId, parseInput } from './validation.ts';

export const SECRET_PREFIX = 'pcs_';
/** Characters of the secret kept to tell keys apart: "pcs_" plus 8 of the 43 random ones. */
const SHOWN_PREFIX_LENGTH = 12;
const TOOL_NAME = /^[A-Za-z0-9_-]+$/;
const MAX_EXPOSED_NAME = 64;
/** Keys one createVirtualKeys call may create. */
export const MAX_KEYS_PER_BATCH = 1000;
/** Rows per INSERT statement (keeps the statement's parameters well under Postgres' limit). */
const INSERT_CHUNK = 500;

/** Why `pattern` is not a valid allow-list entry, or undefined when it is. */
export function allowedToolProblem(pattern: string): string | undefined {
  if (pattern === '*') return undefined;
  const separator = pattern.indexOf('__');
  const fix = 'use "*", "<upstream>__*" or "<upstream>__<tool>" (letters, digits, "_" and "-")';
  if (separator <= 0) return `"${pattern}" has no "<upstream>__" prefix; ${fix}`;
  const upstream = pattern.slice(0, separator);
  const tool = pattern.slice(separator + 2);
  if (!UPSTREAM_NAME_PATTERN.test(upstream))
    return `"${upstream}" in "${pattern}" is not a valid upstream name; ${fix}`;
  if (tool === '*') return undefined;
  if (!TOOL_NAME.test(tool)) return `"${pattern}" is not a valid tool name or wildcard; ${fix}`;
  if (pattern.length > MAX_EXPOSED_NAME)
    return `"${pattern}" is longer than ${MAX_EXPOSED_NAME} characters, which no exposed tool name can be`;
  return undefined;
}

const createVirtualKeySchema = z.object({
  name: z
    .string()
    .trim()
    .min(1, 'is empty; give the key a name people recognize, e.g. "ci-bot"')
    .max(128, 'is longer than 128 characters; shorten it'),
  teamId: z.string().nullish(),
  allowedTools: z
    .array(
      z.string().superRefine((pattern, ctx) => {
        const problem = allowedToolProblem(pattern);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    )
    .max(1000, 'has more than 1000 patterns; use "<upstream>__*" wildcards')
    .nullish(),
  codeMode: z.enum(['INHERIT', 'ON', 'OFF'], 'must be one of INHERIT, ON, OFF').nullish(),
});

export interface VirtualKeyView {
  id: string;
  name: string;
  prefix: string;
  teamId: string | null;
  allowedTools: string[];
  codeMode: CodeModeName;
  revokedAt: Date | null;
  createdAt: Date;
}

/** A key row as the revoking UPDATE returns it (checked: it is read with raw SQL, not through the entity). */
const revokedRow = z.object({
  id: z.string(),
  name: z.string(),
  prefix: z.string(),
  team_id: z.string().nullable(),
  allowed_tools: z.array(z.string()),
  code_mode: z.enum(['INHERIT', 'ON', 'OFF']),
  revoked_at: z.date(),
  created_at: z.date(),
});

function viewOfRow(row: z.output<typeof revokedRow>): VirtualKeyView {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    teamId: row.team_id,
    allowedTools: row.allowed_tools,
    codeMode: row.code_mode,
    revokedAt: row.revoked_at,
    createdAt: row.created_at,
  };
}

export function toVirtualKeyView(key: VirtualKey): VirtualKeyView {
  return {
    id: key.id,
    name: key.name,
    prefix: key.prefix,
    teamId: key.teamId,
    allowedTools: key.allowedTools,
    codeMode: key.codeMode,
    revokedAt: key.revokedAt,
    createdAt: key.createdAt,
  };
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
      const secret = SECRET_PREFIX + randomBytes(32).toString('base64url');
      const key = Object.assign(new VirtualKey(), {
        id: randomUUID(),
        name: input.name,
        prefix: secret.slice(0, SHOWN_PREFIX_LENGTH),
        secretSha256: hashSecret(secret),
        teamId,
        allowedTools: input.allowedTools ? [...new Set(input.allowedTools)] : ['*'],
        codeMode: input.codeMode ?? 'INHERIT',
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
      if (unknown)
        throw badInput(
          `${unknown.where}.teamId`,
          `no team has id "${unknown.key.teamId}"; create one with createTeam or leave teamId out`,
        );
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
   * Revokes a key; revoking a revoked key changes nothing and returns it as it is. Only when the
   * update matches nothing is the key looked up, to tell a revoked key from a missing one.
   */
  async revoke(rawId: string): Promise<VirtualKeyView> {
    const id = parseId(rawId, 'id');
    const rows = await withConfigChange(this.store, async (manager) => {
      // Through a CTE: TypeORM returns [rows, count] for a bare UPDATE, plain rows for a SELECT.
      const revoked: Array<Record<string, unknown>> = await manager.query(
        `WITH r AS (UPDATE virtual_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL
           RETURNING id, name, prefix, team_id, allowed_tools, code_mode, revoked_at, created_at) SELECT * FROM r`,
        [id],
      );
      // The whole of this change's effect on the configuration: the key is no longer live.
      return { result: revoked, changed: revoked.length > 0, known: { removedKeyIds: [id] } };
    });
    if (rows.length > 0) return viewOfRow(revokedRow.parse(rows[0]));
    const key = await this.store.dataSource.getRepository(VirtualKey).findOneBy({ id });
    if (!key)
      throw new PortcullisError(
        ErrorCode.NOT_FOUND,
        `id: no virtual key has id "${id}"; list them with the virtualKeys query`,
        { field: 'id' },
      );
    return toVirtualKeyView(key);
  }

  /** Keys in creation order, one page (see `Page`). */
  async list(page: Page = { first: MAX_PAGE_SIZE, after: null }): Promise<VirtualKeyView[]> {
    const repository = this.store.dataSource.getRepository(VirtualKey);
    const query = repository
      .createQueryBuilder('k')
      .orderBy('k.createdAt', 'ASC')
      .addOrderBy('k.id', 'ASC')
      .take(page.first);
    if (page.after !== null) {
      const after = parseId(page.after, 'after');
      if (!(await repository.existsBy({ id: after }))) throw unknownCursor('virtual key', after);
      // Compared in SQL: created_at has microseconds, a JavaScript Date only milliseconds.
      query.where('(k.created_at, k.id) > (SELECT c.created_at, c.id FROM virtual_keys c WHERE c.id = :after)', {
        after,
      });
    }
    return (await query.getMany()).map(toVirtualKeyView);
  }
}
