import { createHash } from 'node:crypto';
import type { TransportName } from '../db/entities.ts';

/** What a node uses to connect to an upstream, with secret values stood in for by `secretsVersion`. */
export interface UpstreamConnectionSettings {
  transport: TransportName;
  command: string | null;
  args: readonly string[];
  cwd: string | null;
  /** Names only. */
  envNames: readonly string[];
  url: string | null;
  /** Names only. */
  headerNames: readonly string[];
  hasBearerToken: boolean;
  /** Replaced whenever any secret value (env, header, bearer token) changes. */
  secretsVersion: string;
  enabled: boolean;
  /** The MCP revision setting; `auto` (the default) leaves the hash as it was before the setting existed. */
  protocolVersion?: string;
}

/**
 * SHA-256 (hex) of everything a node uses to connect to an upstream: a report carrying another
 * hash is about replaced settings. No secret value goes into it (a leaked hash reveals nothing to
 * guess against); a change of secret values moves `secretsVersion` instead. Timeouts, health checks,
 * pins and unprefixed names are applied to a live connection and are left out. Field order is fixed.
 */
export function upstreamConfigHash(settings: UpstreamConnectionSettings): string {
  const canonical = JSON.stringify([
    settings.transport,
    settings.command ?? '',
    settings.args,
    settings.cwd ?? '',
    settings.envNames,
    settings.url ?? '',
    settings.headerNames,
    settings.hasBearerToken,
    settings.secretsVersion,
    settings.enabled,
    ...(settings.protocolVersion === undefined || settings.protocolVersion === 'auto'
      ? []
      : [settings.protocolVersion]),
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** The hash of a stored upstream row (snake_case columns, as raw SQL returns them). */
export function upstreamRowHash(row: {
  transport: TransportName;
  command: string | null;
  args: string[];
  cwd: string | null;
  env: Array<{ name: string }>;
  url: string | null;
  headers: Array<{ name: string }>;
  bearer_token: string | null;
  secrets_version: string;
  enabled: boolean;
  protocol_version: string;
}): string {
  return upstreamConfigHash({
    transport: row.transport,
    command: row.command,
    args: row.args,
    cwd: row.cwd,
    envNames: row.env.map((pair) => pair.name),
    url: row.url,
    headerNames: row.headers.map((pair) => pair.name),
    hasBearerToken: row.bearer_token !== null,
    secretsVersion: row.secrets_version,
    enabled: row.enabled,
    protocolVersion: row.protocol_version,
  });
}

/** The columns `upstreamRowHash` reads. */
export const UPSTREAM_HASH_COLUMNS =
  'transport, command, args, cwd, env, url, headers, bearer_token, secrets_version, enabled, protocol_version';
