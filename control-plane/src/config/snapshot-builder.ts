import type { DataSource } from 'typeorm';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { Transport, type Snapshot, type UpstreamConfig, type VirtualKeyConfig } from '../../../proto/gen/portcullis/v1/config.ts';
import type { KeyValuePair, TransportName } from '../db/entities.ts';
import { readSessionKeys } from '../services/settings.ts';
import { upstreamConfigHash } from './upstream-hash.ts';

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
  env: KeyValuePair[];
  url: string | null;
  headers: KeyValuePair[];
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
 * belong together) with one query per table, and returns it as an immutable snapshot.
 */
export async function buildSnapshot(dataSource: DataSource): Promise<Snapshot> {
  const snapshot = await dataSource.transaction('REPEATABLE READ', async (manager) => {
    const revision: Array<{ version: string }> = await manager.query(`SELECT version FROM config_revision WHERE id = 1`);
    const upstreams: UpstreamRow[] = await manager.query(
      `SELECT id, name, transport, command, args, env, url, headers FROM upstreams ORDER BY created_at, name`,
    );
    const keys: KeyRow[] = await manager.query(
      `SELECT id, name, secret_sha256, team_id, allowed_tools FROM virtual_keys WHERE revoked_at IS NULL ORDER BY created_at, id`,
    );
    const sessionKeys = await readSessionKeys(manager);
    return {
      version: String(revision[0]?.version ?? '0'),
      upstreams: upstreams.map(toUpstreamConfig),
      virtualKeys: keys.map(toVirtualKeyConfig),
      sessionKeys: sessionKeys.map((key) => ({ id: key.id, secret: key.secret })),
    } satisfies Snapshot;
  });
  checkSnapshotConsistency(snapshot);
  return Object.freeze(snapshot);
}

function toUpstreamConfig(row: UpstreamRow): UpstreamConfig {
  return {
    id: row.id,
    name: row.name,
    transport: TRANSPORTS[row.transport],
    command: row.command ?? '',
    args: row.args,
    env: row.env.map((pair) => ({ name: pair.name, value: pair.value })),
    url: row.url ?? '',
    headers: row.headers.map((pair) => ({ name: pair.name, value: pair.value })),
    configHash: upstreamConfigHash(row),
    // Per-upstream settings and tool pinning are not configurable yet: the nodes' defaults apply.
    cwd: '',
    connectTimeoutMs: 0,
    callTimeoutMs: 0,
    healthIntervalMs: 0,
    healthFailureThreshold: 0,
    disabled: false,
    pinToolDefinitions: false,
    pinnedTools: [],
    exposeUnprefixed: false,
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
  }
  for (const key of snapshot.virtualKeys) {
    if (key.secretSha256.length !== 32) throw inconsistent(`virtual key ${key.id} has a hash of ${key.secretSha256.length} bytes, not 32`);
  }
  if (snapshot.sessionKeys.length === 0) throw inconsistent('no session signing key exists');
}

function inconsistent(reason: string): PortcullisError {
  return new PortcullisError(ErrorCode.INTERNAL, `inconsistent configuration snapshot: ${reason}`);
}
