import { hash } from 'node:crypto';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import type { ControlPlaneAuditContent } from '../audit/audit-content.ts';
import {
  AuditContent,
  type AuditSettingsConfig,
  CodeMode,
  McpAuthorizationConfig,
  Transport,
  type Snapshot,
  type SnapshotDelta,
  type UpstreamConfig,
  type SigningKey,
  type TeamConfig,
  type CustomerConfig,
  type VirtualKeyConfig,
  type ToolPrice,
  type ExecutionPolicyRule,
} from '../../../proto/gen/portcullis/v1/config.ts';
import { ExecutionPolicies } from '../policy/execution-policy.ts';
import type { Principal } from '../policy/principal.ts';
import { PriceList } from '../policy/prices.ts';
import { KeyIndex, governed, keyEntry, type Directory, type KeyEntry } from './key-index.ts';
import { IdentityProviders, type SignedInUser } from '../oauth/identity-providers.ts';

const UPSTREAM_NAME = /^[A-Za-z0-9_-]{1,32}$/;

const upstreamSchema = z
  .object({
    id: z.string().min(1),
    name: z
      .string()
      .regex(UPSTREAM_NAME, 'upstream name must be 1-32 letters, digits, _ or -')
      .refine((n) => !n.includes('__'), 'upstream name must not contain "__"'),
    transport: z
      .enum(Transport)
      .refine((t) => t !== Transport.TRANSPORT_UNSPECIFIED && t !== Transport.UNRECOGNIZED, 'transport is required'),
    command: z.string(),
    url: z.string(),
    pinnedTools: z.array(
      z.object({
        name: z.string().min(1, 'a pinned tool needs a name'),
        definitionSha256: z
          .string()
          .regex(/^[0-9a-f]{64}$/, 'a pinned definition_sha256 must be 64 lower-case hex digits'),
      }),
    ),
  })
  .loose()
  .refine((u) => u.transport !== Transport.TRANSPORT_STDIO || u.command.length > 0, {
    message: 'a STDIO upstream needs a command',
    path: ['command'],
  })
  .refine((u) => u.transport === Transport.TRANSPORT_STDIO || URL.canParse(u.url), {
    message: 'an HTTP upstream needs a valid url',
    path: ['url'],
  });

const keySchema = z
  .object({
    id: z.string().min(1),
    secretSha256: z.instanceof(Uint8Array).refine((b) => b.length === 32, 'secretSha256 must be 32 bytes'),
  })
  .loose();

const sessionKeysSchema = z
  .array(
    z.object({
      id: z.string().min(1),
      secret: z.instanceof(Uint8Array).refine((b) => b.length >= 32, 'session key must be at least 32 bytes'),
    }),
  )
  .min(1, 'at least one session key is required');
const version = z.string().regex(/^\d+$/, 'version must be a decimal revision');
const teamsSchema = z.array(z.object({ id: z.string().min(1, 'a team needs an id') }).loose()).optional();
const customersSchema = z.array(z.object({ id: z.string().min(1, 'a customer needs an id') }).loose()).optional();

const httpUrl = (what: string) =>
  z.string().refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), `${what} must be an http(s) URL`);

const mcpAuthorizationSchema = z
  .object({
    resource: httpUrl('mcp_authorization.resource'),
    identityProviders: z
      .array(
        z.object({
          issuer: httpUrl('an issuer'),
          jwksUri: z.union([z.literal(''), httpUrl('jwks_uri')]),
          teams: z.array(z.object({ claimValue: z.string().min(1, 'a team mapping needs a claim_value') })),
        }),
      )
      .refine((ps) => new Set(ps.map((p) => p.issuer)).size === ps.length, 'issuers must be distinct'),
  })
  .optional();

/** What a snapshot must satisfy before a node serves it; anything else is NACKed with the reason. */
const SnapshotSchema = z.object({
  version,
  upstreams: z.array(upstreamSchema),
  virtualKeys: z.array(keySchema),
  sessionKeys: sessionKeysSchema,
  teams: teamsSchema,
  customers: customersSchema,
  mcpAuthorization: mcpAuthorizationSchema,
});

/** What a delta must satisfy; it is applied only on top of the snapshot of its base version. */
const DeltaSchema = z.object({
  version,
  baseVersion: z.string().regex(/^\d+$/, 'base_version must be a decimal revision'),
  upstreams: z.array(upstreamSchema),
  sessionKeys: sessionKeysSchema,
  upsertedKeys: z.array(keySchema),
  removedKeyIds: z.array(z.string().min(1, 'a removed key id must not be empty')),
  teams: teamsSchema,
  customers: customersSchema,
  mcpAuthorization: mcpAuthorizationSchema,
});

function check(schema: z.ZodType, value: unknown, version: string, what: string): void {
  const checked = schema.safeParse(value);
  if (checked.success) return;
  const issue = checked.error.issues[0];
  const where = issue?.path.join('.') ?? '';
  throw new PortcullisError(ErrorCode.BAD_CONFIG, `${what} ${version}: ${where}: ${issue?.message ?? 'invalid'}`);
}

function checkUpstreamNames(upstreams: readonly UpstreamConfig[], version: string, what: string): void {
  const names = new Set<string>();
  for (const upstream of upstreams) {
    if (names.has(upstream.name))
      throw new PortcullisError(ErrorCode.BAD_CONFIG, `${what} ${version}: duplicate upstream name "${upstream.name}"`);
    names.add(upstream.name);
  }
}

/** Key fields a snapshot (a restart cache, a test's fixture) may lack: they default to none (code mode: INHERIT). */
type Governance = 'expiresAtMs' | 'previousSecretSha256' | 'previousSecretExpiresAtMs' | 'codeMode' | 'auditContent';
export type KeyConfigInput = Omit<VirtualKeyConfig, Governance> & Partial<Pick<VirtualKeyConfig, Governance>>;
type Directory_ = 'teams' | 'customers' | 'prices' | 'budgeted' | 'executionPolicies';
export type SnapshotInput = Omit<Snapshot, Directory_ | 'virtualKeys' | 'takesAuditRows'> &
  Partial<Pick<Snapshot, Directory_ | 'takesAuditRows'>> & { virtualKeys: KeyConfigInput[] };
export type DeltaInput = Omit<SnapshotDelta, Directory_ | 'upsertedKeys'> &
  Partial<Pick<SnapshotDelta, Directory_>> & { upsertedKeys: KeyConfigInput[] };
function policiesOf(
  rules: readonly ExecutionPolicyRule[],
  upstreams: readonly UpstreamConfig[],
  version: string,
  what: string,
): ExecutionPolicies {
  try {
    return ExecutionPolicies.of(rules, upstreams);
  } catch (error) {
    if (error instanceof PortcullisError)
      throw new PortcullisError(ErrorCode.BAD_CONFIG, `${what} ${version}: ${error.message}`);
    throw error;
  }
}

function identity(
  config: McpAuthorizationConfig | undefined,
): readonly [IdentityProviders | undefined, McpAuthorizationConfig | undefined] {
  return config === undefined || config.resource === ''
    ? [undefined, undefined]
    : [IdentityProviders.fromConfig(config), config];
}

/**
 * Whether two revisions' MCP authorization settings are the same (the compiled form is kept, and so the node's token
 * cache).
 */
function sameAuthorization(a: McpAuthorizationConfig | undefined, b: McpAuthorizationConfig | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return Buffer.from(McpAuthorizationConfig.encode(a).finish()).equals(McpAuthorizationConfig.encode(b).finish());
}

/** SHA-256 of a presented secret, hex encoded: the form keys are indexed by. */
export function hashSecret(secret: string): string {
  // One-shot hash: no Hash object per request (a third of createHash's cost for a key-sized input).
  return hash('sha256', secret, 'hex');
}

/**
 * The configuration a node serves: one accepted snapshot plus the indexes the hot path needs.
 * Immutable; a new snapshot (or a delta on this one) yields a new instance, swapped in atomically.
 */
export class AppliedConfig {
  /** Names of the upstreams in code mode (their tools reach INHERIT keys through the meta-tools). */
  readonly codeModeUpstreams: ReadonlySet<string>;
  /** What the control plane says about content logging (audit/audit-content.ts follows it). */
  readonly auditContent: ControlPlaneAuditContent;
  /** Teams and customers by id: what signed-in users are compiled against (principalOfUser). */
  private readonly directory: Directory;

  private constructor(
    readonly version: string,
    readonly upstreams: readonly UpstreamConfig[],
    readonly sessionKeys: readonly SigningKey[],
    readonly teams: readonly TeamConfig[],
    readonly customers: readonly CustomerConfig[],
    private readonly keys: KeyIndex,
    /** What each tool call costs (pipeline/steps/limits.ts). */
    readonly prices: PriceList,
    private readonly priceConfigs: readonly ToolPrice[],
    /** Owners with a budget (`<scope>:<owner id>`): they may spend only what their lease holds. */
    readonly budgeted: ReadonlySet<string>,
    /** OAuth access tokens this node accepts (MCP authorization); undefined: virtual keys only. */
    readonly identityProviders: IdentityProviders | undefined,
    private readonly mcpAuthorization: McpAuthorizationConfig | undefined,
    /**
     * Execution policy per tool (auto, approve, deny): the policy step reads it; denials are in each key's allow-list.
     */
    readonly policies: ExecutionPolicies,
    private readonly policyRules: readonly ExecutionPolicyRule[],
    private readonly auditSettings: AuditSettingsConfig | undefined,
  ) {
    this.codeModeUpstreams = new Set(upstreams.filter((u) => u.codeMode).map((u) => u.name));
    this.auditContent = {
      offUpstreams: new Set(upstreams.filter((u) => u.auditContentOff === true).map((u) => u.name)),
      offByDefault: auditSettings?.contentOffByDefault === true,
    };
    this.directory = directoryOf(teams, customers);
  }

  /** Validates a snapshot and indexes it; throws BAD_CONFIG naming the offending field. */
  static fromSnapshot(snapshot: SnapshotInput): AppliedConfig {
    check(SnapshotSchema, snapshot, snapshot.version, 'snapshot');
    checkUpstreamNames(snapshot.upstreams, snapshot.version, 'snapshot');
    const teamList = snapshot.teams ?? [];
    const customerList = snapshot.customers ?? [];
    const directory = directoryOf(teamList, customerList);
    const rules = snapshot.executionPolicies ?? [];
    const policies = policiesOf(rules, snapshot.upstreams, snapshot.version, 'snapshot');
    return new AppliedConfig(
      snapshot.version,
      snapshot.upstreams,
      snapshot.sessionKeys,
      teamList,
      customerList,
      KeyIndex.of(snapshot.virtualKeys.map((key) => keyEntry(withDefaults(key), directory, policies))),
      PriceList.of(snapshot.prices, snapshot.upstreams),
      snapshot.prices ?? [],
      new Set(snapshot.budgeted),
      ...identity(snapshot.mcpAuthorization),
      policies,
      rules,
      snapshot.auditSettings,
    );
  }

  /**
   * Validates a delta and applies it to this configuration, which must be the delta's base; the
   * result shares this one's key index and copies only what changed. Throws BAD_CONFIG naming the
   * field (or the version mismatch); this configuration is left as it was.
   */
  applyDelta(delta: DeltaInput): AppliedConfig {
    if (delta.baseVersion !== this.version) {
      throw new PortcullisError(
        ErrorCode.BAD_CONFIG,
        `delta ${delta.version}: base_version ${delta.baseVersion} is not the version this node runs ` +
          `(${this.version}); send the whole snapshot`,
      );
    }
    check(DeltaSchema, delta, delta.version, 'delta');
    if (BigInt(delta.version) <= BigInt(this.version)) {
      throw new PortcullisError(
        ErrorCode.BAD_CONFIG,
        `delta ${delta.version}: version is not newer than its base ${delta.baseVersion}`,
      );
    }
    checkUpstreamNames(delta.upstreams, delta.version, 'delta');
    const teamList = delta.teams ?? [];
    const customerList = delta.customers ?? [];
    const directory = directoryOf(teamList, customerList);
    const upserted = delta.upsertedKeys.map(withDefaults);
    const rules = delta.executionPolicies ?? [];
    const policies = policiesOf(rules, delta.upstreams, delta.version, 'delta');
    const changed =
      policies.fingerprint !== this.policies.fingerprint ||
      JSON.stringify([teamList, customerList]) !== JSON.stringify([this.teams, this.customers]);
    // A team, customer or execution policy changed: every key is compiled again (they change rarely; keys often).
    const keys = changed
      ? KeyIndex.of(recompiled(this.keys.with([], delta.removedKeyIds), upserted, directory, policies))
      : this.keys.with(
          upserted.map((key) => keyEntry(key, directory, policies)),
          delta.removedKeyIds,
        );
    return new AppliedConfig(
      delta.version,
      delta.upstreams,
      delta.sessionKeys,
      teamList,
      customerList,
      keys,
      PriceList.of(delta.prices, delta.upstreams),
      delta.prices ?? [],
      new Set(delta.budgeted),
      ...(sameAuthorization(delta.mcpAuthorization, this.mcpAuthorization)
        ? ([this.identityProviders, this.mcpAuthorization] as const)
        : identity(delta.mcpAuthorization)),
      policies,
      rules,
      delta.auditSettings,
    );
  }

  /**
   * The principal of a signed-in user under this configuration: held to its team's lists, execution
   * policies, rate limits and budgets exactly as the team's keys are. Called once per token and
   * snapshot (agent-tokens.ts caches it), never per request.
   */
  principalOfUser(user: SignedInUser): Principal {
    return {
      keyId: user.keyId,
      keyName: user.subject,
      identity: user.identity,
      ...governed(
        { kind: 'user', id: user.keyId, name: user.subject, access: user.access },
        user.teamId,
        user.customerId,
        this.directory,
        this.policies,
      ),
    };
  }

  /** How many virtual keys are configured. */
  get keyCount(): number {
    return this.keys.size;
  }

  /** The whole snapshot this configuration holds (for the restart cache). */
  toSnapshot(): Snapshot {
    return {
      version: this.version,
      // What a control plane takes is learnt from it on each stream, never from the cache.
      takesAuditRows: false,
      upstreams: [...this.upstreams],
      virtualKeys: Array.from(this.keys.entries(), (entry) => entry.config),
      sessionKeys: [...this.sessionKeys],
      teams: [...this.teams],
      customers: [...this.customers],
      prices: [...this.priceConfigs],
      budgeted: [...this.budgeted],
      executionPolicies: [...this.policyRules],
      ...(this.mcpAuthorization === undefined ? {} : { mcpAuthorization: this.mcpAuthorization }),
      ...(this.auditSettings === undefined ? {} : { auditSettings: this.auditSettings }),
    };
  }

  /**
   * The principal for a presented key secret, or undefined when it is unknown, revoked, disabled,
   * expired, or a rotated-away secret past its grace period (all told apart by nobody: one answer).
   */
  authenticate(secret: string, now = Date.now()): Principal | undefined {
    const hashHex = hashSecret(secret);
    const entry = this.keys.byHash(hashHex);
    if (entry === undefined || now >= entry.expiresAtMs) return undefined;
    if (hashHex !== entry.hashHex && now >= entry.previousExpiresAtMs) return undefined;
    return entry.principal;
  }

  /**
   * The principal of a virtual key by its id (no secret involved), or undefined when it is revoked, expired or not in
   * this snapshot.
   */
  principalByKeyId(keyId: string, now = Date.now()): Principal | undefined {
    const entry = this.keys.byId(keyId);
    return entry === undefined || now >= entry.expiresAtMs ? undefined : entry.principal;
  }
}

function withDefaults(key: KeyConfigInput): VirtualKeyConfig {
  return {
    ...key,
    expiresAtMs: key.expiresAtMs ?? 0,
    previousSecretSha256: key.previousSecretSha256 ?? Buffer.alloc(0),
    previousSecretExpiresAtMs: key.previousSecretExpiresAtMs ?? 0,
    codeMode: key.codeMode ?? CodeMode.CODE_MODE_INHERIT,
    auditContent: key.auditContent ?? AuditContent.AUDIT_CONTENT_INHERIT,
  };
}

function directoryOf(teams: readonly TeamConfig[], customers: readonly CustomerConfig[]): Directory {
  return {
    teams: new Map(teams.map((team) => [team.id, team])),
    customers: new Map(customers.map((customer) => [customer.id, customer])),
  };
}

function* recompiled(
  kept: KeyIndex,
  upserted: readonly VirtualKeyConfig[],
  directory: Directory,
  policies: ExecutionPolicies,
): Iterable<KeyEntry> {
  for (const entry of kept.entries()) yield keyEntry(entry.config, directory, policies);
  for (const key of upserted) yield keyEntry(key, directory, policies);
}
