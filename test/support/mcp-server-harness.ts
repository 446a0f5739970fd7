import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../common/src/index.ts';
import { AppliedConfig, hashSecret, type SnapshotInput } from '../../data-plane/src/config/applied-config.ts';
import { createDataPlaneServer, type DataPlaneServer } from '../../data-plane/src/http/server.ts';
import { CodeMode, type SigningKey } from '../../proto/gen/portcullis/v1/config.ts';
import type { UpstreamRouter } from '../../data-plane/src/upstream/upstream-router.ts';
import type { AllowedHost } from '../../data-plane/src/http/host-guard.ts';
import type { EventStoreOptions } from '../../data-plane/src/http/event-store.ts';

export interface TestKey {
  readonly id: string;
  readonly secret: string;
  readonly allowedTools: readonly string[];
  /** Default INHERIT. */
  readonly codeMode?: CodeMode;
}

/** A virtual key with a fresh random secret. */
export function testKey(id: string, allowedTools: readonly string[], codeMode?: CodeMode): TestKey {
  return { id, secret: `pcs_${randomBytes(24).toString('base64url')}`, allowedTools, codeMode };
}

export function sessionKey(id: string): SigningKey {
  return { id, secret: randomBytes(32) };
}

/** An AppliedConfig holding these keys (and session keys), built through the real snapshot validation. */
export function buildConfig(
  keys: readonly TestKey[],
  sessionKeys: readonly SigningKey[],
  version = '1',
): AppliedConfig {
  const snapshot: SnapshotInput = {
    version,
    upstreams: [],
    virtualKeys: keys.map((k) => ({
      id: k.id,
      name: k.id,
      secretSha256: Buffer.from(hashSecret(k.secret), 'hex'),
      teamId: '',
      allowedTools: [...k.allowedTools],
      codeMode: k.codeMode ?? CodeMode.CODE_MODE_INHERIT,
    })),
    sessionKeys: [...sessionKeys],
    executionPolicies: [],
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
export async function startServer(
  router: UpstreamRouter,
  config: AppliedConfig | undefined,
  options: {
    maxBodyBytes?: number;
    listPageSize?: number;
    sseKeepAliveMs?: number;
    anonymousKeyId?: string;
    allowedHosts?: readonly AllowedHost[];
    sessionMaxAgeMs?: number;
    eventStore?: EventStoreOptions;
  } = {},
): Promise<RunningServer> {
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
    sessionMaxAgeMs: options.sessionMaxAgeMs,
    eventStore: options.eventStore,
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

/**
 * A raw 2026-07-28 request as an SDK client sends it (the per-request `_meta` envelope and the
 * standard headers), for tests that look at the wire itself. `extra` adds or overrides headers.
 */
export async function postModern(
  url: string | URL,
  secret: string,
  method: string,
  params: Record<string, unknown>,
  extra: Record<string, string> = {},
): Promise<{ status: number; contentType: string | null; body: { result: Record<string, unknown> } }> {
  const envelope = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
    'io.modelcontextprotocol/clientCapabilities': {},
  };
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${secret}`,
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      ...extra,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method, params: { ...params, _meta: envelope } }),
  });
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    body: (await response.json()) as { result: Record<string, unknown> },
  };
}
