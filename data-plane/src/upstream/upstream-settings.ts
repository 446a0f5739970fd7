import type { ClientOptions } from '@modelcontextprotocol/client';
import { PortcullisError } from '../../../common/src/index.ts';
import { LEGACY_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS } from '../mcp/protocol.ts';
import { Transport, type UpstreamConfig } from '../../../proto/gen/portcullis/v1/config.ts';

/** The node's defaults for what an upstream's snapshot leaves at 0. */
export interface UpstreamDefaults {
  connectTimeoutMs: number;
  callTimeoutMs: number;
  healthIntervalMs: number;
  healthFailureThreshold: number;
}

export const DEFAULT_HEALTH_INTERVAL_MS = 15_000;
export const DEFAULT_HEALTH_FAILURE_THRESHOLD = 3;

/** One upstream's effective settings: its snapshot values, or the node's defaults where they are 0. */
export interface UpstreamSettings {
  readonly connectTimeoutMs: number;
  readonly callTimeoutMs: number;
  readonly healthIntervalMs: number;
  readonly healthFailureThreshold: number;
}

export function effectiveSettings(config: UpstreamConfig, defaults: UpstreamDefaults): UpstreamSettings {
  return {
    connectTimeoutMs: config.connectTimeoutMs || defaults.connectTimeoutMs,
    callTimeoutMs: config.callTimeoutMs || defaults.callTimeoutMs,
    healthIntervalMs: config.healthIntervalMs || defaults.healthIntervalMs,
    healthFailureThreshold: config.healthFailureThreshold || defaults.healthFailureThreshold,
  };
}

/**
 * What identifies an upstream's connection: when this changes the node reconnects; anything else
 * (timeouts, health, pins, unprefixed names) is applied to the live connection in place.
 */
export function connectionKey(config: UpstreamConfig): string {
  const kv = (list: readonly { name: string; value: string }[]) => list.map((e) => [e.name, e.value]);
  const common = {
    name: config.name,
    transport: config.transport,
    disabled: config.disabled,
    protocolVersion: config.protocolVersion || 'auto',
  };
  return JSON.stringify(
    config.transport === Transport.TRANSPORT_STDIO
      ? { ...common, command: config.command, args: config.args, env: kv(config.env), cwd: config.cwd }
      : { ...common, url: config.url, headers: kv(config.headers) },
  );
}

/**
 * How the SDK client negotiates with an upstream, from its `protocolVersion` setting: `auto` (or
 * empty) probes with `server/discover` and falls back to the 2025 handshake; `legacy` is the 2025
 * handshake only; `modern` is 2026-07-28 only; an exact revision is that revision only (a 2025
 * one offered in `initialize`, a 2026-07-28 one pinned). Throws BAD_CONFIG for anything else.
 */
export function versionNegotiation(
  setting: string,
): Pick<ClientOptions, 'versionNegotiation' | 'supportedProtocolVersions'> {
  if (setting === '' || setting === 'auto') return { versionNegotiation: { mode: 'auto' } };
  if (setting === 'legacy') return { versionNegotiation: { mode: 'legacy' } };
  if (setting === 'modern') return { versionNegotiation: { mode: { pin: MODERN_PROTOCOL_VERSIONS.at(-1)! } } };
  if (MODERN_PROTOCOL_VERSIONS.includes(setting)) return { versionNegotiation: { mode: { pin: setting } } };
  if (LEGACY_PROTOCOL_VERSIONS.includes(setting))
    return { versionNegotiation: { mode: 'legacy' }, supportedProtocolVersions: [setting] };
  const known = [...LEGACY_PROTOCOL_VERSIONS, ...MODERN_PROTOCOL_VERSIONS].join(', ');
  throw new PortcullisError(
    'BAD_CONFIG',
    `protocolVersion "${setting}" is not one this node speaks: use auto, legacy, modern or one of ${known}`,
  );
}
