import { hash } from 'node:crypto';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import {
  McpAuthorizationConfig,
  Transport,
  type Snapshot,
  type SnapshotDelta,
  type UpstreamConfig,
  type SigningKey,
  type ExecutionPolicyRule,
} from '../../../proto/gen/portcullis/v1/config.ts';
import { ExecutionPolicies } from '../policy/execution-policy.ts';
import type { Principal } from '../policy/principal.ts';
import { IdentityProviders } from '../oauth/identity-providers.ts';
import { KeyIndex, keyEntry } from './key-index.ts';

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

/** Whether two revisions' MCP authorization settings are the same (the compiled form is kept, and so the node's token cache). */
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

  private constructor(
    readonly version: string,
    readonly upstreams: readonly UpstreamConfig[],
    readonly sessionKeys: readonly SigningKey[],
    private readonly keys: KeyIndex,
    /** OAuth access tokens this node accepts (MCP authorization); undefined: virtual keys only. */
    readonly identityProviders: IdentityProviders | undefined,
    private readonly mcpAuthorization: McpAuthorizationConfig | undefined,
    /** Execution policy per tool (auto, approve, deny): the policy step reads it; denials are in each key's allow-list. */
    readonly policies: ExecutionPolicies,
    private readonly policyRules: readonly ExecutionPolicyRule[],
  ) {
    this.codeModeUpstreams = new Set(upstreams.filter((u) => u.codeMode).map((u) => u.name));
  }

  /** Validates a snapshot and indexes it; throws BAD_CONFIG naming the offending field. */
  static fromSnapshot(snapshot: Snapshot): AppliedConfig {
    check(SnapshotSchema, snapshot, snapshot.version, 'snapshot');
    checkUpstreamNames(snapshot.upstreams, snapshot.version, 'snapshot');
    const rules = snapshot.executionPolicies ?? [];
    const policies = policiesOf(rules, snapshot.upstreams, snapshot.version, 'snapshot');
    return new AppliedConfig(
      snapshot.version,
      snapshot.upstreams,
      snapshot.sessionKeys,
      KeyIndex.of(snapshot.virtualKeys.map((key) => keyEntry(key, policies))),
      ...identity(snapshot.mcpAuthorization),
      policies,
      rules,
    );
  }

  /**
   * Validates a delta and applies it to this configuration, which must be the delta's base; the
   * result shares this one's key index and copies only what changed. Throws BAD_CONFIG naming the
   * field (or the version mismatch); this configuration is left as it was.
   */
  applyDelta(delta: SnapshotDelta): AppliedConfig {
    if (delta.baseVersion !== this.version) {
      throw new PortcullisError(
        ErrorCode.BAD_CONFIG,
        `delta ${delta.version}: base_version ${delta.baseVersion} is not the version this node runs (${this.version}); send the whole snapshot`,
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
    const rules = delta.executionPolicies ?? [];
    const policies = policiesOf(rules, delta.upstreams, delta.version, 'delta');
    // Changed policies change what every key may see: their allow-lists are made again (a rare change).
    const keys =
      policies.fingerprint === this.policies.fingerprint
        ? this.keys.with(
            delta.upsertedKeys.map((key) => keyEntry(key, this.policies)),
            delta.removedKeyIds,
          )
        : KeyIndex.of(
            Array.from(
              this.keys
                .with(
                  delta.upsertedKeys.map((key) => keyEntry(key)),
                  delta.removedKeyIds,
                )
                .entries(),
              (entry) => keyEntry(entry.config, policies),
            ),
          );
    return new AppliedConfig(
      delta.version,
      delta.upstreams,
      delta.sessionKeys,
      keys,
      ...(sameAuthorization(delta.mcpAuthorization, this.mcpAuthorization)
        ? ([this.identityProviders, this.mcpAuthorization] as const)
        : identity(delta.mcpAuthorization)),
      policies,
      rules,
    );
  }

  /** How many virtual keys are configured. */
  get keyCount(): number {
    return this.keys.size;
  }

  /** The whole snapshot this configuration holds (for the restart cache). */
  toSnapshot(): Snapshot {
    return {
      version: this.version,
      upstreams: [...this.upstreams],
      virtualKeys: Array.from(this.keys.entries(), (entry) => entry.config),
      sessionKeys: [...this.sessionKeys],
      executionPolicies: [...this.policyRules],
      ...(this.mcpAuthorization === undefined ? {} : { mcpAuthorization: this.mcpAuthorization }),
    };
  }

  /** The principal for a presented key secret, or undefined when it is unknown or revoked. */
  authenticate(secret: string): Principal | undefined {
    return this.keys.byHash(hashSecret(secret))?.principal;
  }

  /** The principal of a virtual key by its id (no secret involved), or undefined when it is revoked or not in this snapshot. */
  principalByKeyId(keyId: string): Principal | undefined {
    return this.keys.byId(keyId)?.principal;
  }
}
