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
  const common = { name: config.name, transport: config.transport, disabled: config.disabled };
  return JSON.stringify(
    config.transport === Transport.TRANSPORT_STDIO
      ? { ...common, command: config.command, args: config.args, env: kv(config.env), cwd: config.cwd }
      : { ...common, url: config.url, headers: kv(config.headers) },
  );
}
