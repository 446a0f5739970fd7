/**
 * The declarative configuration document (`portcullis plan | apply | export`): its shape only.
 * The values are checked by the same services the GraphQL mutations use, when the document is
 * planned or applied, so the rules live in one place; this schema catches what is not even the
 * right shape (an unknown field, a string where a number goes) with the document path of it.
 */
import { z } from 'zod';

const name = z.string().describe('the object is known by this name; apply matches it to the live object by name');
const int = z.number().int('must be a whole number');

/** A credential: the value (e.g. "${env:TOKEN}", resolved by the CLI), or `{ keep: true }` for the stored one. */
const secret = z
  .union([z.string(), z.object({ keep: z.literal(true) }).strict()], {
    error: `must be a string (e.g. "\${env:NAME}") or { keep: true } to keep the stored value`,
  })
  .describe('write-only: export writes { keep: true }, never the value');

const secretPair = z.object({ name: z.string(), value: secret }).strict();

const rateLimits = z
  .object({ requestsPerMinute: int.optional(), toolCallsPerMinute: int.optional(), burst: int.optional() })
  .strict()
  .describe('per minute, across every node; 0 or omitted: no limit');

const policyRule = z
  .object({
    tool: z.string(),
    policy: z.enum(['AUTO', 'APPROVE', 'DENY']),
    argument: z.string().optional(),
    pattern: z.string().optional(),
    approvalTimeoutMs: int.optional(),
    approvalVia: z.enum(['OPERATOR', 'CLIENT']).optional(),
  })
  .strict();

const budget = z
  .object({ period: z.enum(['DAY', 'WEEK', 'MONTH', 'NONE']), amountMicros: int })
  .strict()
  .describe('one budget of the owner; omitted: none');

const patterns = z.array(z.string()).optional();
const accessLists = {
  allowedTools: patterns,
  deniedTools: patterns,
  allowedPrompts: patterns,
  deniedPrompts: patterns,
  allowedResources: patterns,
  deniedResources: patterns,
};

export const customerSchema = z.object({ name, rateLimits: rateLimits.optional(), budget: budget.optional() }).strict();

export const teamSchema = z
  .object({
    name,
    customer: z.string().optional().describe("the customer's name"),
    ...accessLists,
    rateLimits: rateLimits.optional(),
    policies: z.array(policyRule).optional(),
    budget: budget.optional(),
  })
  .strict();

export const upstreamSchema = z
  .object({
    name,
    transport: z.enum(['STDIO', 'STREAMABLE_HTTP', 'SSE']),
    command: z.string().optional(),
    args: z.array(z.string()).optional(),
    env: z.array(secretPair).optional(),
    cwd: z.string().optional(),
    url: z.string().optional(),
    headers: z.array(secretPair).optional(),
    bearerToken: secret.optional(),
    connectTimeoutMs: int.optional(),
    callTimeoutMs: int.optional(),
    healthIntervalMs: int.optional(),
    healthFailureThreshold: int.optional(),
    enabled: z.boolean().optional(),
    pinToolDefinitions: z.boolean().optional(),
    exposeUnprefixed: z.boolean().optional(),
    codeMode: z.boolean().optional(),
    auditContent: z
      .boolean('must be true or false (false: arguments and results of calls to it are never recorded)')
      .optional()
      .describe('false: arguments and results of calls to it are never recorded (default true)'),
    protocolVersion: z.string().optional(),
    prices: z
      .object({ default: int.optional(), tools: z.record(z.string(), int).optional() })
      .strict()
      .optional()
      .describe("micro-units per call: the upstream's default and per tool (its own tool names)"),
    policies: z.array(policyRule).optional(),
  })
  .strict();

export const keySchema = z
  .object({
    name,
    team: z.string().optional().describe("the team's name"),
    ...accessLists,
    rateLimits: rateLimits.optional(),
    expiresAt: z.string().optional().describe('ISO 8601'),
    enabled: z.boolean().optional(),
    codeMode: z.enum(['INHERIT', 'ON', 'OFF']).optional(),
    auditContent: z
      .enum(['INHERIT', 'ON', 'OFF'], 'must be one of INHERIT (auditSettings.contentDefault), ON, OFF')
      .optional()
      .describe('content logging: INHERIT (default) follows auditSettings.contentDefault'),
    policies: z.array(policyRule).optional(),
    budget: budget.optional(),
  })
  .strict();

export const mcpAuthorizationSchema = z
  .object({
    resource: z.string(),
    identityProviders: z.array(
      z
        .object({
          issuer: z.string(),
          jwksUri: z.string().optional(),
          subjectClaim: z.string().optional(),
          teamClaim: z.string().optional(),
          teams: z.array(
            z
              .object({
                claimValue: z.string(),
                team: z.string().optional().describe("the team's name"),
                customerId: z.string().optional(),
                allowedTools: patterns,
              })
              .strict(),
          ),
        })
        .strict(),
    ),
  })
  .strict()
  .nullable()
  .describe('as setMcpAuthorization takes it, teams by name; null: clear the settings; omitted: left as they are');

export const auditSettingsSchema = z
  .object({
    contentDefault: z
      .boolean('must be true or false (whether keys with auditContent INHERIT have content recorded)')
      .optional()
      .describe('whether arguments and results are recorded for keys with auditContent INHERIT (default true)'),
  })
  .strict()
  .describe('as setAuditSettings takes it; omitted (or a field omitted): left as they are');

const names = z.array(z.string()).optional();
const KINDS = ['customers', 'teams', 'upstreams', 'keys'] as const;
export type DocumentKind = (typeof KINDS)[number];

export const configDocumentSchema = z
  .object({
    version: z.literal(1, 'must be 1 (the version of this document format)'),
    customers: z.array(customerSchema).optional(),
    teams: z.array(teamSchema).optional(),
    upstreams: z.array(upstreamSchema).optional(),
    keys: z.array(keySchema).optional(),
    mcpAuthorization: mcpAuthorizationSchema.optional(),
    auditSettings: auditSettingsSchema.optional(),
    adopt: z
      .object({ customers: names, teams: names, upstreams: names, keys: names })
      .strict()
      .optional()
      .describe('objects made by hand (not by apply) that this document takes under management, by name'),
  })
  .strict()
  .superRefine((document, ctx) => {
    for (const kind of KINDS) {
      const seen = new Map<string, number>();
      (document[kind] ?? []).forEach((entry, index) => {
        const first = seen.get(entry.name);
        if (first !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: [kind, index, 'name'],
            message: `"${entry.name}" is named twice (first at ${kind}[${first}]); give each a different name`,
          });
        else seen.set(entry.name, index);
      });
    }
  });

export type ConfigDocument = z.output<typeof configDocumentSchema>;
export type CustomerEntry = z.output<typeof customerSchema>;
export type TeamEntry = z.output<typeof teamSchema>;
export type UpstreamEntry = z.output<typeof upstreamSchema>;
export type KeyEntry = z.output<typeof keySchema>;
export type Secret = z.output<typeof secret>;
export type PolicyRuleEntry = z.output<typeof policyRule>;

/** A document path as people read it: `upstreams[1].url`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out || '(document)';
}

/** The first problem of a document that is not even the right shape, by its path; undefined when none. */
export function documentProblem(raw: unknown): { path: Array<string | number>; message: string } | undefined {
  const result = configDocumentSchema.safeParse(raw);
  if (result.success) return undefined;
  const issue = result.error.issues[0]!;
  const path = issue.path.map((part) => (typeof part === 'number' ? part : String(part)));
  if (issue.code === 'unrecognized_keys')
    return {
      path: [...path, issue.keys[0]!],
      message: 'is not a field here; check its spelling or remove it (see portcullis schema)',
    };
  return { path, message: issue.message };
}

/** The JSON Schema of the document, for editors (`portcullis schema`). */
export function configDocumentJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configDocumentSchema, { io: 'input', unrepresentable: 'any' }),
    title: 'Portcullis gateway configuration',
  };
}
