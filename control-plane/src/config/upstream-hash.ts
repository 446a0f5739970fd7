import { createHash } from 'node:crypto';
import type { KeyValuePair, TransportName } from '../db/entities.ts';

export interface UpstreamConnectionSettings {
  transport: TransportName;
  command: string | null;
  args: readonly string[];
  env: readonly KeyValuePair[];
  url: string | null;
  headers: readonly KeyValuePair[];
}

/**
 * SHA-256 (hex) of everything a node uses to connect to an upstream: nodes reconnect an upstream
 * only when this changes. Field order is fixed so the hash is stable.
 */
export function upstreamConfigHash(settings: UpstreamConnectionSettings): string {
  const canonical = JSON.stringify([
    settings.transport,
    settings.command ?? '',
    settings.args,
    settings.env.map((pair) => [pair.name, pair.value]),
    settings.url ?? '',
    settings.headers.map((pair) => [pair.name, pair.value]),
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}
