import type { DataSource } from 'typeorm';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import {
  AuditContent,
  CodeMode,
  ExecutionPolicy,
  type ExecutionPolicyRule,
  ApprovalVia,
  Transport,
  type SigningKey,
  type Snapshot,
  type SnapshotDelta,
  type UpstreamConfig,
  type VirtualKeyConfig,
  type TeamConfig,
  type CustomerConfig,
  type ToolPrice,
} from '../../../proto/gen/portcullis/v1/config.ts';
import {
  accessListsConfig,
  rateLimitsConfig,
  storedAccessLists,
  storedRateLimitsSchema,
} from '../services/access-lists.ts';
import type { TransportName } from '../db/entities.ts';
import { openBearer, openPairs, type SecretBox } from '../secrets/index.ts';
import { SESSION_KEYS_SETTING } from '../services/settings.ts';
import { AUDIT_SETTINGS_SETTING, toAuditSettingsConfig } from '../services/audit-settings.ts';
import { MCP_AUTHORIZATION_SETTING, toMcpAuthorizationConfig } from '../services/mcp-authorization.ts';
import { upstreamRowHash } from './upstream-hash.ts';
import { REVISION_SQL } from './revision.ts';

const TRANSPORTS: Record<TransportName, Transport> = {
  STDIO: Transport.TRANSPORT_STDIO,
  STREAMABLE_HTTP: Transport.TRANSPORT_STREAMABLE_HTTP,
  SSE: Transport.TRANSPORT_SSE,
};

const KEY_CODE_MODES: Readonly<Record<string, CodeMode>> = {
  INHERIT: CodeMode.CODE_MODE_INHERIT,
  ON: CodeMode.CODE_MODE_ON,
  OFF: CodeMode.CODE_MODE_OFF,
};

const KEY_AUDIT_CONTENT: Readonly<Record<string, AuditContent>> = {
  INHERIT: AuditContent.AUDIT_CONTENT_INHERIT,
  ON: AuditContent.AUDIT_CONTENT_ON,
  OFF: AuditContent.AUDIT_CONTENT_OFF,
};

const storedPair = z.object({ name: z.string(), secret: z.string() });
const nullableInt = z.number().int().nullable();

/** The rows the build reads, as the database returns them (JSON); checked, since a snapshot is built from them. */
const upstreamRow = z.object({
  id: z.string(),
  name: z.string(),
  transport: z.enum(['STDIO', 'STREAMABLE_HTTP', 'SSE']),
  command: z.string().nullable(),
  args: z.array(z.string()),
  env: z.array(storedPair),
  url: z.string().nullable(),
  headers: z.array(storedPair),
  cwd: z.string().nullable(),
  bearer_token: z.string().nullable(),
  secrets_version: z.string(),
  enabled: z.boolean(),
  connect_timeout_ms: nullableInt,
  call_timeout_ms: nullableInt,
  health_interval_ms: nullableInt,
  health_failure_threshold: nullableInt,
  pin_tool_definitions: z.boolean(),
  expose_unprefixed: z.boolean(),
  protocol_version: z.string(),
  code_mode: z.boolean(),
  audit_content: z.boolean(),
});
type UpstreamRow = z.output<typeof upstreamRow>;

const readResult = z.object({
  version: z.string().regex(/^\d+$/),
  upstreams: z.array(upstreamRow),
  pins: z.array(z.object({ upstream_id: z.string(), name: z.string(), pinned_sha256: z.string() })),
  session_keys: z.string().nullable(),
  mcp_authorization: z.string().nullable(),
  audit_settings: z.string().nullable(),
  /** Checked one by one in `toVirtualKeyConfig` (there may be 100,000 of them). */
  keys: z.array(z.unknown()),
  tombstones: z.array(z.string()),
  teams: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      customer_id: z.string().nullable(),
      access: storedAccessLists,
      rate_limits: storedRateLimitsSchema,
    }),
  ),
  customers: z.array(z.object({ id: z.string(), name: z.string(), rate_limits: storedRateLimitsSchema })),
  prices: z.array(
    z.object({ upstream_id: z.string(), tool: z.string(), price_micros: z.union([z.string(), z.number()]) }),
  ),
  budgeted: z.array(z.string()),
  policies: z.array(
    z.object({
      upstream_id: z.string().nullable(),
      team_id: z.string().nullable(),
      key_id: z.string().nullable(),
      tool: z.string(),
      policy: z.enum(['AUTO', 'APPROVE', 'DENY']),
      argument: z.string().nullable(),
      pattern: z.string().nullable(),
      approval_timeout_ms: nullableInt,
      approval_via: z.enum(['OPERATOR', 'CLIENT']).nullish(),
    }),
  ),
});

const POLICIES: Record<'AUTO' | 'APPROVE' | 'DENY', ExecutionPolicy> = {
  AUTO: ExecutionPolicy.EXECUTION_POLICY_AUTO,
  APPROVE: ExecutionPolicy.EXECUTION_POLICY_APPROVE,
  DENY: ExecutionPolicy.EXECUTION_POLICY_DENY,
};

/** The stored rules as the snapshot carries them (every rule, every build: they are few). */
function toPolicyRules(rows: z.output<typeof readResult>['policies']): ExecutionPolicyRule[] {
  return rows.map((row) => ({
    upstreamId: row.upstream_id ?? '',
    teamId: row.team_id ?? '',
    keyId: row.key_id ?? '',
    tool: row.tool,
    policy: POLICIES[row.policy],
    argument: row.argument ?? '',
    pattern: row.pattern ?? '',
    approvalTimeoutMs: row.approval_timeout_ms ?? 0,
    approvalVia:
      row.approval_via === 'CLIENT'
        ? ApprovalVia.APPROVAL_VIA_CLIENT
        : row.approval_via === 'OPERATOR'
          ? ApprovalVia.APPROVAL_VIA_OPERATOR
          : ApprovalVia.APPROVAL_VIA_UNSPECIFIED,
  }));
}

const sessionKeysValue = z.array(z.object({ id: z.string(), secret: z.string() }));

interface KeyRow {
  id: string;
  name: string;
  /** Hex (from the JSON of an incremental read) or bytes (from the rows of a whole one). */
  secret_sha256: string | Buffer | null;
  team_id: string | null;
  allowed_tools: string[];
  code_mode: string;
  audit_content: string;
  /** Revoked or disabled: not live. */
  revoked: boolean;
  access: unknown;
  rate_limits: unknown;
  /** ms since the epoch (as text or number), or null. */
  expires_at_ms: string | number | null;
  previous_secret_sha256: string | Buffer | null;
  previous_secret_expires_at_ms: string | number | null;
}

/** Where the time of one build went (ms), and whether it read only what changed. */
export interface BuildTimings {
  readMs: number;
  assembleMs: number;
  totalMs: number;
  incremental: boolean;
  /** Keys read from the database in this build (all of them, or only those changed). */
  keysRead: number;
  /** Upstreams whose credentials had to be decrypted (the others came from the cache). */
  upstreamsOpened: number;
}

export interface SnapshotBuild {
  /** The whole snapshot of the revision read (frozen). */
  snapshot: Snapshot;
  /** The changes from the previous build's snapshot to this one; absent on the first build. */
  delta: SnapshotDelta | undefined;
  timings: BuildTimings;
}

/**
 * One consistent read of everything a snapshot holds but the keys of a whole build. A single
 * statement sees one database snapshot, so the revision and the rows belong together without a
 * transaction (and cost one round trip, which matters on the embedded database). Incremental: only
 * keys stamped after the revision in $2 are read, revoked ones included, plus the tombstones of
 * keys deleted since. Whole: no keys here; `WHOLE_KEYS` reads them as rows in the same transaction
 * (one JSON value of 100,000 keys costs Postgres and the driver several times what rows do).
 */
function readStatement(incremental: boolean): string {
  const keys = incremental
    ? `(SELECT coalesce(json_agg(json_build_object('id', k.id, 'name', k.name,
           'secret_sha256', encode(k.secret_sha256, 'hex'), 'team_id', k.team_id,
           'allowed_tools', k.allowed_tools, 'code_mode', k.code_mode, 'audit_content', k.audit_content,
           'revoked', k.revoked_at IS NOT NULL OR NOT k.enabled, 'access', k.access,
           'rate_limits', k.rate_limits, 'expires_at_ms', ${EPOCH_MS('k.expires_at')},
           'previous_secret_sha256', encode(k.previous_secret_sha256, 'hex'),
           'previous_secret_expires_at_ms', ${EPOCH_MS('k.previous_secret_expires_at')})
           ORDER BY k.created_at, k.id), '[]')
         FROM virtual_keys k WHERE k.config_version > $2)`
    : `'[]'::json`;
  const tombstones = incremental
    ? `(SELECT coalesce(json_agg(t.id::text), '[]') FROM virtual_key_tombstones t WHERE t.config_version > $2)`
    : `'[]'::json`;
  return `
    SELECT
      ${REVISION_SQL} AS version,
      (SELECT coalesce(json_agg(u ORDER BY u.created_at, u.name), '[]') FROM (
         SELECT id, name, transport, command, args, env, url, headers, cwd, bearer_token,
           secrets_version::text AS secrets_version, enabled, connect_timeout_ms, call_timeout_ms,
           health_interval_ms, health_failure_threshold, pin_tool_definitions,
           expose_unprefixed, protocol_version, code_mode, audit_content, created_at
         FROM upstreams) u) AS upstreams,
      (SELECT coalesce(json_agg(json_build_object('upstream_id', t.upstream_id, 'name', t.name,
           'pinned_sha256', t.pinned_sha256) ORDER BY t.upstream_id, t.name), '[]')
         FROM tools t JOIN upstreams u ON u.id = t.upstream_id
         WHERE u.pin_tool_definitions AND t.pinned_sha256 IS NOT NULL) AS pins,
      (SELECT value FROM settings WHERE key = $1) AS session_keys,
      (SELECT value FROM settings WHERE key = '${MCP_AUTHORIZATION_SETTING}') AS mcp_authorization,
      (SELECT value FROM settings WHERE key = '${AUDIT_SETTINGS_SETTING}') AS audit_settings,
      ${keys} AS keys,
      ${tombstones} AS tombstones,
      (SELECT coalesce(json_agg(json_build_object('id', t.id, 'name', t.name, 'customer_id', t.customer_id,
           'access', t.access, 'rate_limits', t.rate_limits) ORDER BY t.id), '[]') FROM teams t) AS teams,
      (SELECT coalesce(json_agg(json_build_object('id', c.id, 'name', c.name, 'rate_limits', c.rate_limits)
           ORDER BY c.id), '[]')
         FROM customers c) AS customers,
      (SELECT coalesce(json_agg(json_build_object('upstream_id', p.upstream_id, 'tool', p.tool,
           'price_micros', p.price_micros)
           ORDER BY p.upstream_id, p.tool), '[]') FROM tool_prices p) AS prices,
      (SELECT coalesce(json_agg(lower(b.scope) || ':' || b.owner_id ORDER BY b.scope, b.owner_id), '[]')
         FROM budgets b) AS budgeted,
      (SELECT coalesce(json_agg(json_build_object('upstream_id', p.upstream_id, 'team_id', p.team_id,
           'key_id', p.key_id, 'tool', p.tool, 'policy', p.policy, 'argument', p.argument, 'pattern', p.pattern,
           'approval_timeout_ms', p.approval_timeout_ms, 'approval_via', p.approval_via)
           ORDER BY p.upstream_id NULLS LAST, p.team_id NULLS LAST, p.key_id NULLS LAST, p.position), '[]')
         FROM execution_policies p) AS policies`;
}

/** A timestamptz column as whole ms since the epoch (bigint as text), or null. */
function EPOCH_MS(column: string): string {
  return `(floor(extract(epoch FROM ${column}) * 1000))::bigint`;
}

const WHOLE_KEYS = `SELECT id, name, secret_sha256, team_id, allowed_tools, code_mode, audit_content,
                    false AS revoked, access, rate_limits,
    ${EPOCH_MS('expires_at')}::text AS expires_at_ms, previous_secret_sha256,
    ${EPOCH_MS('previous_secret_expires_at')}::text AS previous_secret_expires_at_ms
  FROM virtual_keys WHERE revoked_at IS NULL AND enabled ORDER BY created_at, id`;

/**
 * Builds the versioned snapshots nodes are sent (as go-control-plane's snapshot cache: build, check
 * consistency, publish by version). The first build reads every live key; each later one reads only
 * the keys stamped after the revision it built last (see migration 1733500000000) and yields both
 * the whole snapshot and the delta from the previous one. Upstream credentials are decrypted only
 * when the stored upstream changed. Not safe for concurrent `build()` calls: the publisher runs one
 * at a time.
 */
export class SnapshotBuilder {
  private previous: Snapshot | undefined;
  /** The live keys of `previous`, by id, in snapshot order. */
  private keys = new Map<string, VirtualKeyConfig>();
  /** Decrypted upstream configs by id, with the fingerprint of the stored rows they came from. */
  private upstreamCache = new Map<string, { fingerprint: string; config: UpstreamConfig }>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly box: SecretBox,
  ) {}

  /** Forgets everything: the next build reads every key again. */
  reset(): void {
    this.previous = undefined;
    this.keys = new Map();
    this.upstreamCache = new Map();
  }

  async build(): Promise<SnapshotBuild> {
    const started = performance.now();
    const previous = this.previous;
    const incremental = previous !== undefined;
    const params: unknown[] = [SESSION_KEYS_SETTING];
    if (incremental) params.push(previous.version);
    let rows: unknown[];
    let wholeKeys: unknown[] = [];
    if (incremental) {
      rows = await this.dataSource.query(readStatement(true), params);
    } else {
      [rows, wholeKeys] = await this.dataSource.transaction('REPEATABLE READ', async (manager) => [
        await manager.query(readStatement(false), params),
        await manager.query(WHOLE_KEYS),
      ]);
    }
    const read = performance.now();
    const checked = readResult.safeParse(rows[0]);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      throw inconsistent(
        `the stored configuration could not be read: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
      );
    }
    const result = checked.data;
    if (!incremental) result.keys = wholeKeys;
    const timings = (keysRead: number, upstreamsOpened: number): BuildTimings => {
      const done = performance.now();
      return {
        readMs: read - started,
        assembleMs: done - read,
        totalMs: done - started,
        incremental,
        keysRead,
        upstreamsOpened,
      };
    };
    if (previous !== undefined && BigInt(result.version) <= BigInt(previous.version)) {
      return { snapshot: previous, delta: undefined, timings: timings(result.keys.length, 0) };
    }

    const pinsByUpstream = new Map<string, Array<{ name: string; pinned_sha256: string }>>();
    for (const pin of result.pins) {
      const list = pinsByUpstream.get(pin.upstream_id) ?? [];
      list.push(pin);
      pinsByUpstream.set(pin.upstream_id, list);
    }
    const upstreamCache = new Map<string, { fingerprint: string; config: UpstreamConfig }>();
    let upstreamsOpened = 0;
    const upstreams = result.upstreams.map((row) => {
      const pins = pinsByUpstream.get(row.id) ?? [];
      const fingerprint = JSON.stringify([row, pins]);
      let cached = this.upstreamCache.get(row.id);
      if (cached?.fingerprint !== fingerprint) {
        cached = { fingerprint, config: toUpstreamConfig(row, pins, this.box) };
        upstreamsOpened++;
      }
      upstreamCache.set(row.id, cached);
      return cached.config;
    });
    const sessionKeys: SigningKey[] =
      result.session_keys === null
        ? []
        : sessionKeysValue
            .parse(JSON.parse(result.session_keys))
            .map((key) => ({ id: key.id, secret: Buffer.from(key.secret, 'base64') }));

    // Work out and check the key changes before touching the state, so a refused build leaves it as it was.
    const upserted: VirtualKeyConfig[] = [];
    const removed = new Set<string>();
    for (const raw of result.keys) {
      const row = raw as KeyRow;
      if (row.revoked) {
        if (this.keys.has(row.id)) removed.add(row.id);
      } else {
        upserted.push(toVirtualKeyConfig(row));
      }
    }
    for (const id of result.tombstones) if (this.keys.has(id)) removed.add(id);
    const teams: TeamConfig[] = result.teams.map((team) => ({
      id: team.id,
      name: team.name,
      customerId: team.customer_id ?? '',
      access: accessListsConfig(team.access),
      rateLimits: rateLimitsConfig(team.rate_limits),
    }));
    const customers: CustomerConfig[] = result.customers.map((customer) => ({
      id: customer.id,
      name: customer.name,
      rateLimits: rateLimitsConfig(customer.rate_limits),
    }));
    const prices: ToolPrice[] = result.prices.map((price) => ({
      upstreamId: price.upstream_id,
      tool: price.tool,
      priceMicros: Number(price.price_micros),
    }));
    const executionPolicies = toPolicyRules(result.policies);
    checkSnapshotConsistency({ version: result.version, upstreams, virtualKeys: upserted, sessionKeys });
    const mcpAuthorization = toMcpAuthorizationConfig(result.mcp_authorization);

    const keys = incremental ? this.keys : new Map<string, VirtualKeyConfig>();
    for (const id of removed) keys.delete(id);
    for (const key of upserted) keys.set(key.id, key);
    const whole: SnapshotWhole = {
      version: result.version,
      upstreams,
      sessionKeys,
      teams,
      customers,
      prices,
      budgeted: result.budgeted,
      executionPolicies,
      auditSettings: toAuditSettingsConfig(result.audit_settings),
      ...(mcpAuthorization === undefined ? {} : { mcpAuthorization }),
      // Not configuration: this control plane parses audit rows (parseAuditLine), so its nodes ship them as such.
      takesAuditRows: true,
    };
    const { snapshot, delta } = snapshotWithDelta(
      whole,
      [...keys.values()],
      previous && { baseVersion: previous.version, upsertedKeys: upserted, removedKeyIds: [...removed] },
    );
    this.previous = snapshot;
    this.keys = keys;
    this.upstreamCache = upstreamCache;
    return { snapshot, delta, timings: timings(result.keys.length, upstreamsOpened) };
  }

  /**
   * The build of `version` when it is the previous build's version plus one and differs from it
   * only by the keys `removedKeyIds` no longer being live (a revocation, whose transaction knows
   * this exactly): nothing is read, so the revision can go out the moment it is committed.
   * Undefined when the previous build is of another version (anything else may have changed since:
   * read it with `build`).
   */
  withKeysRemoved(version: string, removedKeyIds: readonly string[]): SnapshotBuild | undefined {
    const started = performance.now();
    const previous = this.previous;
    if (previous === undefined || BigInt(previous.version) + 1n !== BigInt(version)) return undefined;
    const removed = removedKeyIds.filter((id) => this.keys.has(id));
    for (const id of removed) this.keys.delete(id);
    const { virtualKeys: _all, ...whole } = previous;
    const { snapshot, delta } = snapshotWithDelta({ ...whole, version }, [...this.keys.values()], {
      baseVersion: previous.version,
      upsertedKeys: [],
      removedKeyIds: removed,
    });
    this.previous = snapshot;
    const totalMs = performance.now() - started;
    return {
      snapshot,
      delta,
      timings: { readMs: 0, assembleMs: totalMs, totalMs, incremental: true, keysRead: 0, upstreamsOpened: 0 },
    };
  }
}

/** A one-off full build (no state kept). */
export async function buildSnapshot(dataSource: DataSource, box: SecretBox): Promise<Snapshot> {
  return (await new SnapshotBuilder(dataSource, box).build()).snapshot;
}

function toUpstreamConfig(
  row: UpstreamRow,
  pins: ReadonlyArray<{ name: string; pinned_sha256: string }>,
  box: SecretBox,
): UpstreamConfig {
  const headers = openPairs(box, row.id, 'header', row.headers);
  const bearer = openBearer(box, row.id, row.bearer_token);
  if (bearer !== null) headers.push({ name: 'Authorization', value: `Bearer ${bearer}` });
  return {
    id: row.id,
    name: row.name,
    transport: TRANSPORTS[row.transport],
    command: row.command ?? '',
    args: row.args,
    env: openPairs(box, row.id, 'env', row.env),
    url: row.url ?? '',
    headers,
    configHash: upstreamRowHash(row),
    cwd: row.cwd ?? '',
    connectTimeoutMs: row.connect_timeout_ms ?? 0,
    callTimeoutMs: row.call_timeout_ms ?? 0,
    healthIntervalMs: row.health_interval_ms ?? 0,
    healthFailureThreshold: row.health_failure_threshold ?? 0,
    disabled: !row.enabled,
    pinToolDefinitions: row.pin_tool_definitions,
    pinnedTools: pins.map((pin) => ({ name: pin.name, definitionSha256: pin.pinned_sha256 })),
    exposeUnprefixed: row.expose_unprefixed,
    protocolVersion: row.protocol_version,
    codeMode: row.code_mode,
    auditContentOff: !row.audit_content,
  };
}

function toVirtualKeyConfig(row: KeyRow): VirtualKeyConfig {
  if (typeof row.id !== 'string' || typeof row.name !== 'string' || !Array.isArray(row.allowed_tools)) {
    throw inconsistent(`virtual key ${String(row.id)} is stored malformed`);
  }
  const access = storedAccessLists.safeParse(row.access ?? {});
  const limits = storedRateLimitsSchema.safeParse(row.rate_limits ?? {});
  if (!access.success || !limits.success) throw inconsistent(`virtual key ${row.id} has malformed lists or limits`);
  return {
    id: row.id,
    name: row.name,
    secretSha256: bytes(row.secret_sha256) ?? Buffer.alloc(0),
    teamId: row.team_id ?? '',
    allowedTools: row.allowed_tools,
    codeMode: KEY_CODE_MODES[row.code_mode] ?? CodeMode.CODE_MODE_INHERIT,
    auditContent: KEY_AUDIT_CONTENT[row.audit_content] ?? AuditContent.AUDIT_CONTENT_INHERIT,
    access: accessListsConfig({ ...access.data, allowedTools: row.allowed_tools }),
    expiresAtMs: Number(row.expires_at_ms ?? 0),
    previousSecretSha256: bytes(row.previous_secret_sha256) ?? Buffer.alloc(0),
    previousSecretExpiresAtMs: Number(row.previous_secret_expires_at_ms ?? 0),
    rateLimits: rateLimitsConfig(limits.data),
  };
}

/** Hex (from the JSON of an incremental read) or bytes (from the rows of a whole one). */
function bytes(value: string | Buffer | null): Buffer | undefined {
  if (value === null) return undefined;
  return typeof value === 'string' ? Buffer.from(value, 'hex') : value;
}

/**
 * Refuses a snapshot no node should be sent (as go-control-plane's `Consistent()`). An incremental
 * build passes the keys changed since a snapshot that passed as `virtualKeys`: only they are new.
 */
export function checkSnapshotConsistency(
  snapshot: Pick<Snapshot, 'version' | 'upstreams' | 'sessionKeys'> & {
    virtualKeys: ReadonlyArray<Pick<VirtualKeyConfig, 'id' | 'secretSha256'> & Partial<VirtualKeyConfig>>;
  },
): void {
  const names = new Set<string>();
  for (const upstream of snapshot.upstreams) {
    if (names.has(upstream.name)) throw inconsistent(`two upstreams are named "${upstream.name}"`);
    names.add(upstream.name);
    if (upstream.transport === Transport.TRANSPORT_UNSPECIFIED)
      throw inconsistent(`upstream "${upstream.name}" has no transport`);
    const headerNames = new Set<string>();
    for (const header of upstream.headers) {
      const key = header.name.toLowerCase();
      if (headerNames.has(key))
        throw inconsistent(`upstream "${upstream.name}" sends the header "${header.name}" twice`);
      headerNames.add(key);
    }
    for (const pin of upstream.pinnedTools) {
      if (!/^[0-9a-f]{64}$/.test(pin.definitionSha256))
        throw inconsistent(
          `upstream "${upstream.name}" pins tool "${pin.name}" to "${pin.definitionSha256}", not a hex SHA-256`,
        );
    }
  }
  for (const key of snapshot.virtualKeys) {
    if (key.secretSha256.length !== 32)
      throw inconsistent(`virtual key ${key.id} has a hash of ${key.secretSha256.length} bytes, not 32`);
  }
  if (snapshot.sessionKeys.length === 0) throw inconsistent('no session signing key exists');
}

function inconsistent(reason: string): PortcullisError {
  return new PortcullisError(ErrorCode.INTERNAL, `inconsistent configuration snapshot: ${reason}`);
}

/** What a snapshot and its delta both carry whole: all but the keys. */
type SnapshotWhole = Omit<Snapshot, 'virtualKeys'>;

/**
 * A snapshot (frozen) and, given the key changes since its base, the delta to it: they differ only in the keys (all of
 * them, or the changes).
 */
function snapshotWithDelta(
  whole: SnapshotWhole,
  virtualKeys: VirtualKeyConfig[],
  keyChanges: Pick<SnapshotDelta, 'baseVersion' | 'upsertedKeys' | 'removedKeyIds'> | undefined,
): { snapshot: Snapshot; delta: SnapshotDelta | undefined } {
  return {
    snapshot: Object.freeze({ ...whole, virtualKeys }),
    delta: keyChanges && { ...whole, ...keyChanges },
  };
}
