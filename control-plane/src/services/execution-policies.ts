import type { EntityManager } from 'typeorm';
import { z } from 'zod';
import { ErrorCode, PortcullisError } from '../../../common/src/index.ts';
import { withConfigChange, type ConfigStore } from './config-change.ts';
import { badInput, parseId, parseInput } from './validation.ts';

export type ExecutionPolicyName = 'AUTO' | 'APPROVE' | 'DENY';
export type ApprovalViaName = 'OPERATOR' | 'CLIENT';

/** One stored rule, as GraphQL's ToolPolicy shows it. */
export interface ToolPolicy {
  readonly id: string;
  readonly tool: string;
  readonly policy: ExecutionPolicyName;
  readonly argument: string | null;
  readonly pattern: string | null;
  readonly approvalTimeoutMs: number | null;
  /** APPROVE only: who is asked (null: OPERATOR). */
  readonly approvalVia: ApprovalViaName | null;
}

/** Whose rules: exactly one of an upstream, a team and a key. */
export type PolicyScope =
  | { readonly kind: 'upstream'; readonly id: string }
  | { readonly kind: 'team'; readonly id: string }
  | { readonly kind: 'key'; readonly id: string };

const SCOPE_TABLE = { upstream: 'upstreams', team: 'teams', key: 'virtual_keys' } as const;
const SCOPE_COLUMN = { upstream: 'upstream_id', team: 'team_id', key: 'key_id' } as const;
const MAX_RULES = 1000;
const MAX_APPROVAL_TIMEOUT_MS = 7 * 24 * 3600 * 1000;

/** An exposed-name pattern of a team or key rule. */
const EXPOSED_PATTERN = /^(\*|[A-Za-z0-9_-]{1,32}__\*|[^\s*]{1,256})$/;

const scopeSchema = z
  .object({ upstreamId: z.string().nullish(), teamId: z.string().nullish(), keyId: z.string().nullish() })
  .refine((scope) => [scope.upstreamId, scope.teamId, scope.keyId].filter((id) => id != null).length === 1, {
    message: 'give exactly one of upstreamId, teamId and keyId',
  });

const ruleSchema = z
  .object({
    tool: z.string().trim().min(1, 'is empty; name a tool, or "*"').max(256, 'is longer than 256 characters'),
    policy: z.enum(['AUTO', 'APPROVE', 'DENY']),
    argument: z.string().min(1, 'is empty; name a top-level argument, or leave it out').max(256).nullish(),
    pattern: z
      .string()
      .min(1, 'is empty; give a regular expression, or leave it out')
      .max(1024)
      .refine((pattern) => {
        try {
          new RegExp(pattern, 'u');
          return true;
        } catch {
          return false;
        }
      }, 'is not a valid (JavaScript, Unicode) regular expression')
      .nullish(),
    approvalTimeoutMs: z
      .number()
      .int()
      .min(1000, 'must be at least 1000 (one second)')
      .max(MAX_APPROVAL_TIMEOUT_MS, 'must be at most a week')
      .nullish(),
    approvalVia: z.enum(['OPERATOR', 'CLIENT']).nullish(),
  })
  .refine((rule) => (rule.argument == null) === (rule.pattern == null), {
    message: 'argument and pattern go together: the rule applies when that argument matches the pattern',
    path: ['pattern'],
  })
  .refine((rule) => rule.argument == null || rule.policy === 'APPROVE', {
    message: 'only an APPROVE rule may have a condition (a denied tool is hidden from lists, whatever its arguments)',
    path: ['argument'],
  })
  .refine((rule) => rule.approvalTimeoutMs == null || rule.policy === 'APPROVE', {
    message: 'only an APPROVE rule has an approval timeout',
    path: ['approvalTimeoutMs'],
  })
  .refine((rule) => rule.approvalVia == null || rule.policy === 'APPROVE', {
    message: 'only an APPROVE rule says who approves; leave approvalVia out',
    path: ['approvalVia'],
  });

const rulesSchema = z.array(ruleSchema).max(MAX_RULES, `at most ${MAX_RULES} rules per scope`);
/** A scope's rules, validated. */
export type ParsedRules = z.output<typeof rulesSchema>;

interface RuleRow {
  id: string;
  upstream_id: string | null;
  team_id: string | null;
  key_id: string | null;
  tool: string;
  policy: ExecutionPolicyName;
  argument: string | null;
  pattern: string | null;
  approval_timeout_ms: number | null;
  approval_via: ApprovalViaName | null;
}

function toPolicy(row: RuleRow): ToolPolicy {
  return {
    id: row.id,
    tool: row.tool,
    policy: row.policy,
    argument: row.argument,
    pattern: row.pattern,
    approvalTimeoutMs: row.approval_timeout_ms,
    approvalVia: row.approval_via,
  };
}

/**
 * Execution policy rules (auto, approve, deny): per tool of an upstream with a default per
 * upstream, and overrides per team and per key; nodes apply the strictest that fits a call. Set a
 * scope's rules as a whole (the list replaces what it had), in one configuration change.
 */
export class ExecutionPolicyService {
  constructor(private readonly store: ConfigStore) {}

  /** Replaces the rules of one scope; returns them as stored. */
  async set(rawScope: unknown, rawRules: unknown): Promise<ToolPolicy[]> {
    const scopeInput = parseInput(scopeSchema, rawScope, 'scope');
    const scope: PolicyScope =
      scopeInput.upstreamId != null
        ? { kind: 'upstream', id: parseId(scopeInput.upstreamId, 'scope.upstreamId') }
        : scopeInput.teamId != null
          ? { kind: 'team', id: parseId(scopeInput.teamId, 'scope.teamId') }
          : { kind: 'key', id: parseId(scopeInput.keyId!, 'scope.keyId') };
    const rules = this.parseRules(rawRules, scope.kind, 'rules');
    return withConfigChange(this.store, async (manager) => {
      const exists = (await manager.query(`SELECT 1 FROM ${SCOPE_TABLE[scope.kind]} WHERE id = $1`, [
        scope.id,
      ])) as unknown[];
      if (exists.length === 0)
        throw new PortcullisError(ErrorCode.NOT_FOUND, `scope: no ${scope.kind} with id ${scope.id}`, {
          field: `scope.${scope.kind === 'key' ? 'keyId' : `${scope.kind}Id`}`,
        });
      return { result: await this.replace(manager, scope, rules), changed: true };
    });
  }

  /** Rules as given for a scope of `kind`, validated (errors name `field`), before anything is written. */
  parseRules(rawRules: unknown, kind: PolicyScope['kind'], field: string): ParsedRules {
    const rules = parseInput(rulesSchema, rawRules, field);
    rules.forEach((rule, index) => {
      if (kind !== 'upstream' && !EXPOSED_PATTERN.test(rule.tool))
        throw badInput(
          `${field}.${index}.tool`,
          `"${rule.tool}" is not a tool pattern; give an exposed tool name ("up__tool"), a whole upstream ("up__*") ` +
            `or "*"`,
        );
    });
    return rules;
  }

  /** Replaces the rules of an existing scope within a configuration change (`manager`'s transaction). */
  async replace(manager: EntityManager, scope: PolicyScope, rules: ParsedRules): Promise<ToolPolicy[]> {
    await manager.query(`DELETE FROM execution_policies WHERE ${SCOPE_COLUMN[scope.kind]} = $1`, [scope.id]);
    const stored: ToolPolicy[] = [];
    for (const [position, rule] of rules.entries()) {
      const rows = (await manager.query(
        `INSERT INTO execution_policies (${SCOPE_COLUMN[scope.kind]}, position, tool, policy, argument, pattern,
         approval_timeout_ms, approval_via)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
        [
          scope.id,
          position,
          rule.tool,
          rule.policy,
          rule.argument ?? null,
          rule.pattern ?? null,
          rule.approvalTimeoutMs ?? null,
          rule.approvalVia ?? null,
        ],
      )) as RuleRow[];
      stored.push(toPolicy(rows[0]!));
    }
    return stored;
  }

  /** The rules of each scope id of one kind, in order (for GraphQL fields; one query per batch). */
  async ofScopes(kind: PolicyScope['kind'], ids: readonly string[]): Promise<Map<string, ToolPolicy[]>> {
    const found = new Map<string, ToolPolicy[]>();
    if (ids.length === 0) return found;
    const column = SCOPE_COLUMN[kind];
    const rows = (await this.store.dataSource.query(
      `SELECT * FROM execution_policies WHERE ${column} = ANY($1::uuid[]) ORDER BY ${column}, position`,
      [[...ids]],
    )) as RuleRow[];
    for (const row of rows) {
      const id = row[column]!;
      const list = found.get(id) ?? [];
      list.push(toPolicy(row));
      found.set(id, list);
    }
    return found;
  }
}
