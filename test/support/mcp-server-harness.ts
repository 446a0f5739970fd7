import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../common/src/index.ts';
import { AppliedConfig, hashSecret } from '../../data-plane/src/config/applied-config.ts';
import { createDataPlaneServer, type DataPlaneServer } from '../../data-plane/src/http/server.ts';
import type { Snapshot, SigningKey } from '../../proto/gen/portcullis/v1/config.ts';
import type { UpstreamRouter } from '../../data-plane/src/upstream/upstream-router.ts';
import type { AllowedHost } from '../../data-plane/src/http/host-guard.ts';

export interface TestKey {
  readonly id: string;
  readonly secret: string;
  readonly allowedTools: readonly string[];
}

/** A virtual key with a fresh random secret. */
export function testKey(id: string, allowedTools: readonly string[]): TestKey {
  return { id, secret: `pcs_${randomBytes(24).toString('base64url')}`, allowedTools };
}

export function sessionKey(id: string): SigningKey {
  return { id, secret: randomBytes(32) };
}

/** An AppliedConfig holding these keys (and session keys), built through the real snapshot validation. */
export function buildConfig(keys: readonly TestKey[], sessionKeys: readonly SigningKey[], version = '1'): AppliedConfig {
  const snapshot: Snapshot = {
    version,
    upstreams: [],
    virtualKeys: keys.map((k) => ({ id: k.id, name: k.id, secretSha256: Buffer.from(hashSecret(k.secret), 'hex'), teamId: '', allowedTools: [...k.allowedTools] })),
    sessionKeys: [...sessionKeys],
  };
  return AppliedConfig.fromSnapshot(snapshot);
}

export interface RunningServer {
  readonly gateway: DataPlaneServer;
  readonly url: URL;
  config: AppliedConfig | undefined;
  close(): Promise<void>;
}

/** Starts a data-plane server on 127.0.0.1:0 serving `config` (mutable: assign and call gateway.configChanged()). */
export async function startServer(router: UpstreamRouter, config: AppliedConfig | undefined, options: { maxBodyBytes?: number; listPageSize?: number; sseKeepAliveMs?: number; anonymousKeyId?: string; allowedHosts?: readonly AllowedHost[] } = {}): Promise<RunningServer> {
  const running = {
    config,
    gateway: undefined as unknown as DataPlaneServer,
    url: undefined as unknown as URL,
    close: () => running.gateway.close(),
  };
  running.gateway = createDataPlaneServer({
    getConfig: () => running.config,
    upstreams: router,
    listPageSize: options.listPageSize,
    sseKeepAliveMs: options.sseKeepAliveMs,
    anonymousKeyId: options.anonymousKeyId,
    allowedHosts: options.allowedHosts,
    logger: createLogger({ level: 'silent' }),
    maxBodyBytes: options.maxBodyBytes ?? 64 * 1024,
    serverInfo: { name: 'portcullis-test', version: '0.0.0' },
  });
  running.gateway.server.listen(0, '127.0.0.1');
  await once(running.gateway.server, 'listening');
  const { port } = running.gateway.server.address() as AddressInfo;
  running.url = new URL(`http://127.0.0.1:${port}/mcp`);
  return running;
}

