import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../common/src/index.ts';
import {
  AppliedConfig,
  hashSecret,
  type KeyConfigInput,
  type SnapshotInput,
} from '../../data-plane/src/config/applied-config.ts';
import {
  createDataPlaneServer,
  type DataPlaneServer,
  type DataPlaneServerOptions,
} from '../../data-plane/src/http/server.ts';
import { CodeMode, type SigningKey } from '../../proto/gen/portcullis/v1/config.ts';
import type { UpstreamRouter } from '../../data-plane/src/upstream/upstream-router.ts';
import type { AllowedHost } from '../../data-plane/src/http/host-guard.ts';
import type { EventStoreOptions } from '../../data-plane/src/http/event-store.ts';
import { postMcp } from './gateway.ts';

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

/** The snapshot entry of a test key: no team, its own allow-list, code mode INHERIT unless it says otherwise. */
export function virtualKeyConfig(key: TestKey): KeyConfigInput {
  return {
    id: key.id,
    name: key.id,
    secretSha256: Buffer.from(hashSecret(key.secret), 'hex'),
    teamId: '',
    allowedTools: [...key.allowedTools],
    codeMode: key.codeMode ?? CodeMode.CODE_MODE_INHERIT,
  };
}

/**
 * An AppliedConfig holding these keys and session keys (default: one fresh key `s1`), built through the real
 * snapshot validation.
 */
export function buildConfig(
  keys: readonly TestKey[],
  sessionKeys: readonly SigningKey[] = [sessionKey('s1')],
  version = '1',
): AppliedConfig {
  const snapshot: SnapshotInput = {
    version,
    upstreams: [],
    virtualKeys: keys.map(virtualKeyConfig),
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

/** What a test gives createDataPlaneServer: the config and upstreams, and any option over the tests' defaults. */
export type TestGatewayOptions = Pick<DataPlaneServerOptions, 'getConfig' | 'upstreams'> &
  Partial<DataPlaneServerOptions>;

/** A data-plane server, not listening yet, with the tests' defaults: silent, 64 KiB bodies, a test server info. */
export function testGateway(options: TestGatewayOptions): DataPlaneServer {
  return createDataPlaneServer({
    logger: createLogger({ level: 'silent' }),
    maxBodyBytes: 64 * 1024,
    serverInfo: { name: 'portcullis-test', version: '0.0.0' },
    ...options,
  });
}

/** A `testGateway` listening on 127.0.0.1:0, and its /mcp URL. */
export async function listenGateway(options: TestGatewayOptions): Promise<{ gateway: DataPlaneServer; url: URL }> {
  const gateway = testGateway(options);
  gateway.server.listen(0, '127.0.0.1');
  await once(gateway.server, 'listening');
  const { port } = gateway.server.address() as AddressInfo;
  return { gateway, url: new URL(`http://127.0.0.1:${port}/mcp`) };
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
  ({ gateway: running.gateway, url: running.url } = await listenGateway({
    getConfig: () => running.config,
    upstreams: router,
    listPageSize: options.listPageSize,
    sseKeepAliveMs: options.sseKeepAliveMs,
    anonymousKeyId: options.anonymousKeyId,
    sessionMaxAgeMs: options.sessionMaxAgeMs,
    eventStore: options.eventStore,
    allowedHosts: options.allowedHosts,
    maxBodyBytes: options.maxBodyBytes ?? 64 * 1024,
  }));
  return running;
}

/** A raw 2025-era `initialize` request, as a client without an SDK sends it. */
export function initializeRequest(protocolVersion: string) {
  return {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion, capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  };
}

/** POSTs a raw 2025-era `initialize` with this bearer secret; the response as it arrives. */
export function postInitialize(url: string | URL, secret: string, protocolVersion: string): Promise<Response> {
  return postMcp(url, initializeRequest(protocolVersion), { authorization: `Bearer ${secret}` });
}

/** A reply to a raw request: the JSON answer, or a streamed one split into its notifications and its response. */
export interface WireReply {
  status: number;
  notifications: Record<string, unknown>[];
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: Record<string, unknown> };
}

/**
 * A raw 2026-07-28 request as an agent without an SDK sends it: the per-request envelope in `_meta` (after what
 * `params._meta` holds) and the standard headers; `headers` adds some (`Mcp-Name`) or overrides them.
 */
export function fetchModern(
  url: string | URL,
  secret: string,
  method: string,
  params: Record<string, unknown>,
  options: {
    capabilities?: Record<string, unknown>;
    id?: number;
    headers?: Record<string, string>;
    signal?: AbortSignal;
  } = {},
): Promise<Response> {
  const given = params['_meta'];
  const envelope = {
    ...(typeof given === 'object' && given !== null ? given : {}),
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
    'io.modelcontextprotocol/clientCapabilities': options.capabilities ?? {},
  };
  return postMcp(
    url,
    { jsonrpc: '2.0', id: options.id ?? 1, method, params: { ...params, _meta: envelope } },
    {
      authorization: `Bearer ${secret}`,
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      ...options.headers,
    },
    options.signal,
  );
}

/** Reads a raw reply: a streamed answer (text/event-stream) is split into its notifications and its response. */
export async function wireReply(response: Response): Promise<WireReply> {
  const text = await response.text();
  if (!response.headers.get('content-type')?.includes('text/event-stream'))
    return { status: response.status, notifications: [], ...(JSON.parse(text) as object) };
  const messages = text
    .split('\n')
    .filter((l) => l.startsWith('data: ') && l.length > 6)
    .map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>);
  return {
    status: response.status,
    notifications: messages.filter((m) => m['method'] !== undefined),
    ...(messages.find((m) => m['method'] === undefined) as object),
  };
}

/**
 * A raw 2026-07-28 request as an SDK client sends it (see fetchModern), answered in JSON. `extra` adds or overrides
 * headers.
 */
export async function postModern(
  url: string | URL,
  secret: string,
  method: string,
  params: Record<string, unknown>,
  extra: Record<string, string> = {},
): Promise<{ status: number; contentType: string | null; body: { result: Record<string, unknown> } }> {
  // The envelope alone: what params._meta holds is not carried.
  const response = await fetchModern(url, secret, method, { ...params, _meta: undefined }, { id: 7, headers: extra });
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    body: (await response.json()) as { result: Record<string, unknown> },
  };
}
