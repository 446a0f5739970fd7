import { In, type EntityManager } from 'typeorm';
import { z } from 'zod';
import type { McpAuthorizationConfig } from '../../../proto/gen/portcullis/v1/config.ts';
import { Team } from '../db/entities.ts';
import { withConfigChange, type ConfigStore } from './config-change.ts';
import { allowedToolProblem } from './virtual-keys.ts';
import { badInput, parseInput } from './validation.ts';

/** The settings row holding the MCP authorization settings (JSON of `McpAuthorizationView`); absent: keys only. */
export const MCP_AUTHORIZATION_SETTING = 'mcp_authorization';
const MAX_PROVIDERS = 16;
const MAX_MAPPINGS = 1000;

const httpUrl = (what: string) =>
  z
    .string()
    .trim()
    .refine(
      (u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol) && new URL(u).hash === '',
      `is not an http(s) URL without a fragment; give ${what}`,
    );
const claimName = z
  .string()
  .trim()
  .min(1, 'is empty; name a claim of the token, or omit the field')
  .max(256, 'is longer than 256 characters');

const mappingSchema = z.object({
  claimValue: z.string().min(1, 'is empty; give the claim value to match, or "*" for every token').max(512),
  teamId: z.string().uuid('is not a team id; pass the id of a team from `teams`').nullish(),
  customerId: z.string().trim().min(1).max(128).nullish(),
  allowedTools: z
    .array(
      z.string().superRefine((p, ctx) => {
        const problem = allowedToolProblem(p);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    )
    .max(1000)
    .nullish(),
});

const providerSchema = z.object({
  issuer: httpUrl("the authorization server's issuer identifier, exactly as its tokens' `iss`"),
  jwksUri: httpUrl("the issuer's JWKS URL, or omit it to have nodes discover it").nullish(),
  subjectClaim: claimName.nullish(),
  teamClaim: claimName.nullish(),
  teams: z
    .array(mappingSchema)
    .min(1, 'is empty; map at least one claim value (or "*") to a team, or no user could sign in')
    .max(MAX_MAPPINGS),
});

const inputSchema = z.object({
  resource: httpUrl('the URL agents use for the MCP endpoint, such as "https://gateway.example.com/mcp"'),
  identityProviders: z
    .array(providerSchema)
    .min(1, 'is empty; name an authorization server, or clear the settings with input: null')
    .max(MAX_PROVIDERS)
    .refine((ps) => new Set(ps.map((p) => p.issuer)).size === ps.length, 'names one issuer twice; give each once'),
});

/** The settings as stored and as GraphQL shows them (defaults filled in). */
export interface McpAuthorizationView {
  resource: string;
  identityProviders: Array<{
    issuer: string;
    jwksUri: string | null;
    subjectClaim: string;
    teamClaim: string | null;
    teams: Array<{ claimValue: string; teamId: string | null; customerId: string | null; allowedTools: string[] }>;
  }>;
}

const storedSchema = z.object({
  resource: z.string(),
  identityProviders: z.array(
    z.object({
      issuer: z.string(),
      jwksUri: z.string().nullable(),
      subjectClaim: z.string(),
      teamClaim: z.string().nullable(),
      teams: z.array(
        z.object({
          claimValue: z.string(),
          teamId: z.string().nullable(),
          customerId: z.string().nullable(),
          allowedTools: z.array(z.string()),
        }),
      ),
    }),
  ),
});

/** The stored settings (a settings row's value) as the snapshot carries them. */
export function toMcpAuthorizationConfig(value: string | null): McpAuthorizationConfig | undefined {
  if (value === null) return undefined;
  const view = storedSchema.parse(JSON.parse(value));
  return {
    resource: view.resource,
    identityProviders: view.identityProviders.map((p) => ({
      issuer: p.issuer,
      jwksUri: p.jwksUri ?? '',
      subjectClaim: p.subjectClaim,
      teamClaim: p.teamClaim ?? '',
      teams: p.teams.map((t) => ({
        claimValue: t.claimValue,
        teamId: t.teamId ?? '',
        customerId: t.customerId ?? '',
        allowedTools: t.allowedTools,
      })),
    })),
  };
}

/**
 * The data plane as an OAuth 2.1 protected resource: which authorization servers' access tokens
 * agents may present instead of a virtual key, the resource (audience) those tokens must name, and
 * how claims map to a team, customer and subject. One settings object, replaced whole.
 */
export class McpAuthorizationService {
  constructor(private readonly store: ConfigStore) {}

  async get(): Promise<McpAuthorizationView | null> {
    return read(this.store.dataSource.manager);
  }

  /** Replaces the settings (null: clears them, nodes then accept virtual keys only). */
  async set(rawInput: unknown): Promise<McpAuthorizationView | null> {
    const view =
      rawInput === null || rawInput === undefined ? null : toView(parseInput(inputSchema, rawInput, 'input'));
    return withConfigChange(this.store, async (manager) => {
      if (view === null) {
        // A CTE: TypeORM answers a bare DELETE … RETURNING with [rows, count].
        const deleted: unknown[] = await manager.query(
          `WITH d AS (DELETE FROM settings WHERE key = $1 RETURNING key) SELECT key FROM d`,
          [MCP_AUTHORIZATION_SETTING],
        );
        return { result: null, changed: deleted.length > 0 };
      }
      await checkTeams(manager, view);
      await manager.query(
        `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [MCP_AUTHORIZATION_SETTING, JSON.stringify(view)],
      );
      return { result: view, changed: true };
    });
  }
}

function toView(input: z.output<typeof inputSchema>): McpAuthorizationView {
  return {
    resource: input.resource,
    identityProviders: input.identityProviders.map((p) => ({
      issuer: p.issuer,
      jwksUri: p.jwksUri ?? null,
      subjectClaim: p.subjectClaim ?? 'sub',
      teamClaim: p.teamClaim ?? null,
      teams: p.teams.map((t) => ({
        claimValue: t.claimValue,
        teamId: t.teamId?.toLowerCase() ?? null,
        customerId: t.customerId ?? null,
        // As for keys: omitted means every tool.
        allowedTools: t.allowedTools ? [...new Set(t.allowedTools)] : ['*'],
      })),
    })),
  };
}

async function checkTeams(manager: EntityManager, view: McpAuthorizationView): Promise<void> {
  const ids = new Set(view.identityProviders.flatMap((p) => p.teams.flatMap((t) => (t.teamId ? [t.teamId] : []))));
  if (ids.size === 0) return;
  const found = new Set(
    // FOR SHARE: a team being deleted meanwhile is waited for (and then not found).
    (
      await manager.find(Team, {
        where: { id: In([...ids]) },
        select: { id: true },
        lock: { mode: 'pessimistic_read' },
      })
    ).map((t) => t.id),
  );
  view.identityProviders.forEach((p, i) =>
    p.teams.forEach((t, j) => {
      if (t.teamId !== null && !found.has(t.teamId))
        throw badInput(
          `input.identityProviders.${i}.teams.${j}.teamId`,
          `no team has id ${t.teamId}; create it with createTeam or pass an id from \`teams\``,
        );
    }),
  );
}

/** The settings `setMcpAuthorization` would store for this input (checked, defaults filled in). */
export function mcpAuthorizationView(rawInput: unknown): McpAuthorizationView {
  return toView(parseInput(inputSchema, rawInput, 'input'));
}

/** The stored settings, read through `manager` (null: none). */
export async function readMcpAuthorization(manager: EntityManager): Promise<McpAuthorizationView | null> {
  return read(manager);
}

async function read(manager: EntityManager): Promise<McpAuthorizationView | null> {
  const rows: Array<{ value: string }> = await manager.query(`SELECT value FROM settings WHERE key = $1`, [
    MCP_AUTHORIZATION_SETTING,
  ]);
  return rows[0] === undefined ? null : storedSchema.parse(JSON.parse(rows[0].value));
}
