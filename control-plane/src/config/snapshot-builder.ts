import type { DataSource } from 'typeorm';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { Transport, type Snapshot, type UpstreamConfig, type VirtualKeyConfig } from '../../../proto/gen/portcullis/v1/config.ts';
import type { StoredSecretPair, TransportName } from '../db/entities.ts';
import { openBearer, openPairs, type SecretBox } from '../secrets/index.ts';
import { readSessionKeys } from '../services/settings.ts';
import { UPSTREAM_HASH_COLUMNS, upstreamRowHash } from './upstream-hash.ts';

const TRANSPORTS: Record<TransportName, Transport> = {
  STDIO: Transport.TRANSPORT_STDIO,
  STREAMABLE_HTTP: Transport.TRANSPORT_STREAMABLE_HTTP,
  SSE: Transport.TRANSPORT_SSE,
};

interface UpstreamRow {
  id: string;
  name: string;
  transport: TransportName;
  command: string | null;
  args: string[];
  env: StoredSecretPair[];
  url: string | null;
  headers: StoredSecretPair[];
  cwd: string | null;
  bearer_token: string | null;
  secrets_version: string;
  enabled: boolean;
  connect_timeout_ms: number | null;
  call_timeout_ms: number | null;
  health_interval_ms: number | null;
  health_failure_threshold: number | null;
  pin_tool_definitions: boolean;
  expose_unprefixed: boolean;
}

interface PinRow {
  upstream_id: string;
  name: string;
  pinned_sha256: string;
}

interface KeyRow {
  id: string;
  name: string;
  secret_sha256: Buffer;
  team_id: string | null;
  allowed_tools: string[];
}

/**
 * Reads the whole configuration in one consistent read (REPEATABLE READ: the version and the rows
 * belong together) with one query per table, and returns it as an immutable snapshot. Credentials
 * are decrypted here: nodes need them, and the stream they travel on is node-token authenticated.
 */
export async function buildSnapshot(dataSource: DataSource, box: SecretBox): Promise<Snapshot> {
  const snapshot = await dataSource.transaction('REPEATABLE READ', async (manager) => {
    const revision: Array<{ version: string }> = await manager.query(`SELECT version FROM config_revision WHERE id = 1`);
    const upstreams: UpstreamRow[] = await manager.query(
      `SELECT id, name, ${UPSTREAM_HASH_COLUMNS}, connect_timeout_ms, call_timeout_ms, health_interval_ms, health_failure_threshold,
         pin_tool_definitions, expose_unprefixed
       FROM upstreams ORDER BY created_at, name`,
    );
    // Pins of unlisted tools stay: a tool that disappears and comes back changed is still held back.
    const pins: PinRow[] = await manager.query(
      `SELECT t.upstream_id, t.name, t.pinned_sha256 FROM tools t JOIN upstreams u ON u.id = t.upstream_id
       WHERE u.pin_tool_definitions AND t.pinned_sha256 IS NOT NULL ORDER BY t.upstream_id, t.name`,
    );
    const keys: KeyRow[] = await manager.query(
      `SELECT id, name, secret_sha256, team_id, allowed_tools FROM virtual_keys WHERE revoked_at IS NULL ORDER BY created_at, id`,
    );
    const sessionKeys = await readSessionKeys(manager);
    const pinsByUpstream = new Map<string, PinRow[]>();
    for (const pin of pins) {
      const list = pinsByUpstream.get(pin.upstream_id) ?? [];
      list.push(pin);
      pinsByUpstream.set(pin.upstream_id, list);
    }
    return {
      version: String(revision[0]?.version ?? '0'),
      upstreams: upstreams.map((row) => toUpstreamConfig(row, pinsByUpstream.get(row.id) ?? [], box)),
      virtualKeys: keys.map(toVirtualKeyConfig),
      sessionKeys: sessionKeys.map((key) => ({ id: key.id, secret: key.secret })),
    } satisfies Snapshot;
  });
  checkSnapshotConsistency(snapshot);
  return Object.freeze(snapshot);
}

function toUpstreamConfig(row: UpstreamRow, pins: readonly PinRow[], box: SecretBox): UpstreamConfig {
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
  };
}

function toVirtualKeyConfig(row: KeyRow): VirtualKeyConfig {
  return {
    id: row.id,
    name: row.name,
    secretSha256: row.secret_sha256,
    teamId: row.team_id ?? '',
    allowedTools: row.allowed_tools,
  };
}

/** Refuses a snapshot no node should be sent (as go-control-plane's `Consistent()`). */
export function checkSnapshotConsistency(snapshot: Snapshot): void {
  const names = new Set<string>();
  for (const upstream of snapshot.upstreams) {
    if (names.has(upstream.name)) throw inconsistent(`two upstreams are named "${upstream.name}"`);
    names.add(upstream.name);
    if (upstream.transport === Transport.TRANSPORT_UNSPECIFIED) throw inconsistent(`upstream "${upstream.name}" has no transport`);
    const headerNames = new Set<string>();
    for (const header of upstream.headers) {
      const key = header.name.toLowerCase();
      if (headerNames.has(key)) throw inconsistent(`upstream "${upstream.name}" sends the header "${header.name}" twice`);
      headerNames.add(key);
    }
    for (const pin of upstream.pinnedTools) {
      if (!/^[0-9a-f]{64}$/.test(pin.definitionSha256)) throw inconsistent(`upstream "${upstream.name}" pins tool "${pin.name}" to "${pin.definitionSha256}", not a hex SHA-256`);
    }
  }
  for (const key of snapshot.virtualKeys) {
    if (key.secretSha256.length !== 32) throw inconsistent(`virtual key ${key.id} has a hash of ${key.secretSha256.length} bytes, not 32`);
  }
  if (snapshot.sessionKeys.length === 0) throw inconsistent('no session signing key exists');
}

function inconsistent(reason: string): PortcullisError {
  return new PortcullisError(ErrorCode.INTERNAL, `inconsistent configuration snapshot: ${reason}`);
}
