import { hostname } from 'node:os';
import { z } from 'zod';
import { ErrorCode, PortcullisError, type Logger } from '../../../common/src/index.ts';
import type { DataPlaneOptions } from '../../../data-plane/src/index.ts';
import type { AdminOidcOptions } from '../../../control-plane/src/admins/admin-oidc.ts';
import {
  DEFAULT_MAX_BYTES_PER_KEY,
  DEFAULT_MAX_BYTES_PER_SESSION,
  DEFAULT_MAX_BYTES_PER_STREAM,
  DEFAULT_MAX_STREAMS_PER_KEY,
  DEFAULT_MAX_STREAMS_PER_SESSION,
  DEFAULT_MAX_EVENTS_PER_STREAM,
  DEFAULT_MAX_STORE_BYTES,
  DEFAULT_MAX_STREAMS,
  DEFAULT_RESUME_WINDOW_MS,
  DEFAULT_SSE_RETRY_MS,
  type EventStoreOptions,
} from '../../../data-plane/src/http/event-store.ts';
import {
  DEFAULT_MAX_OPEN_STREAMS_PER_KEY,
  DEFAULT_MAX_OPEN_STREAMS_PER_SESSION,
} from '../../../data-plane/src/http/agent-streams.ts';
import { parseAllowedHosts } from '../../../data-plane/src/http/host-guard.ts';
import {
  DEFAULT_MAX_IN_FLIGHT_PER_KEY,
  DEFAULT_MAX_IN_FLIGHT_PER_SESSION,
} from '../../../data-plane/src/http/in-flight.ts';
import { DEFAULT_GRAPHQL_LIMITS, type GraphqlLimits } from '../../../control-plane/src/graphql/limits.ts';
import { host, listOption, port, type OptionTable, type ParsedOptions } from '../options.ts';
import { nodeHealthOptions, nodeHealthSettings } from './node-health-settings.ts';
import { auditOptions, auditSettings } from './audit-settings.ts';
import { rateLimitOptions, rateLimitSettings } from './rate-limit-settings.ts';
import type { ControlPlaneConnection } from './stream-settings.ts';
import {
  DEFAULT_SANDBOX_LIMITS,
  DEFAULT_SANDBOX_POOL,
  MAX_STACK_BYTES,
  type SandboxPoolOptions,
} from '../../../data-plane/src/code-mode/sandbox-pool.ts';

/** Settings shared by the commands, so each flag and variable is defined once. */

export const logLevel = {
  flag: 'log-level',
  env: 'PORTCULLIS_LOG_LEVEL',
  description: 'log level: trace, debug, info, warn, error, fatal or silent',
  schema: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  defaultLabel: 'info',
} as const;

/** What one GraphQL request may ask for (see control-plane/src/graphql/limits.ts); `count` is hoisted from below. */
export const graphqlLimitSettings = {
  graphqlMaxDepth: countSetting(
    'graphql-max-depth',
    ['levels', 2, 100],
    DEFAULT_GRAPHQL_LIMITS.maxDepth,
    'deepest selection nesting a GraphQL query may have (the top-level field is 1)',
  ),
  graphqlMaxCost: countSetting(
    'graphql-max-cost',
    ['cost units', 10, 10_000_000],
    DEFAULT_GRAPHQL_LIMITS.maxCost,
    'highest graphql-armor cost of a query (object fields 2, scalars 1, times 1.5 per level)',
  ),
  graphqlMaxAliases: countSetting(
    'graphql-max-aliases',
    ['aliases', 0, 100_000],
    DEFAULT_GRAPHQL_LIMITS.maxAliases,
    'aliased fields one GraphQL operation may have',
  ),
  graphqlMaxDirectives: countSetting(
    'graphql-max-directives',
    ['directives', 0, 100_000],
    DEFAULT_GRAPHQL_LIMITS.maxDirectives,
    'directives one GraphQL operation may have',
  ),
  graphqlMaxTokens: countSetting(
    'graphql-max-tokens',
    ['tokens', 100, 10_000_000],
    DEFAULT_GRAPHQL_LIMITS.maxTokens,
    'lexical tokens a GraphQL query text may have (parsing stops at the limit)',
  ),
  graphqlMaxListItems: countSetting(
    'graphql-max-list-items',
    ['items', 100, 100_000_000],
    DEFAULT_GRAPHQL_LIMITS.maxListItems,
    'list items one GraphQL answer may hold over all its lists and levels',
  ),
  graphqlMaxBodyBytes: {
    flag: 'graphql-max-body-bytes',
    env: 'PORTCULLIS_GRAPHQL_MAX_BODY_BYTES',
    description: 'largest GraphQL request body (larger: HTTP 413)',
    schema: count('bytes', 1024, 1024 ** 3).default(DEFAULT_GRAPHQL_LIMITS.maxBodyBytes),
    defaultLabel: `${DEFAULT_GRAPHQL_LIMITS.maxBodyBytes} (1 MiB)`,
  },
} satisfies OptionTable;

/** The control plane's GraphQL limits from its parsed settings. */
export function graphqlLimits(settings: ParsedOptions<typeof graphqlLimitSettings>): GraphqlLimits {
  return {
    maxDepth: settings.graphqlMaxDepth,
    maxCost: settings.graphqlMaxCost,
    maxAliases: settings.graphqlMaxAliases,
    maxDirectives: settings.graphqlMaxDirectives,
    maxTokens: settings.graphqlMaxTokens,
    maxListItems: settings.graphqlMaxListItems,
    maxBodyBytes: settings.graphqlMaxBodyBytes,
  };
}

export const controlPlaneSettings = {
  auditRetentionDays: {
    flag: 'audit-retention-days',
    env: 'PORTCULLIS_AUDIT_RETENTION_DAYS',
    description:
      'keep audit records this many whole days; older day partitions are dropped hourly (the hash chain is ' +
      'anchored past them)',
    schema: z.coerce.number({ error: 'must be a number of days' }).int().min(1, 'must be at least 1').optional(),
    defaultLabel: 'forever',
  },
  databaseUrl: {
    flag: 'database-url',
    env: 'DATABASE_URL',
    description: 'PostgreSQL URL; without it an embedded database is kept in the data dir',
    schema: z
      .string()
      .refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgres:// URL')
      .optional(),
  },
  databaseSchema: {
    flag: 'database-schema',
    env: 'PORTCULLIS_DATABASE_SCHEMA',
    description: 'PostgreSQL schema to keep the tables in',
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier')
      .default('public'),
    defaultLabel: 'public',
  },
  databaseConnectTimeoutMs: databaseTimeout(
    'connect',
    5_000,
    'how long connecting to PostgreSQL, or waiting for a free pooled connection, may take; a request that cannot ' +
      'get one fails with DATABASE_UNAVAILABLE',
  ),
  databaseStatementTimeoutMs: databaseTimeout(
    'statement',
    10_000,
    'how long one statement, and one whole configuration change, may take; a change that cannot commit in time ' +
      'fails with DATABASE_TIMEOUT and is never applied later',
  ),
  databaseIdleInTransactionTimeoutMs: databaseTimeout(
    'idle-in-transaction',
    10_000,
    'how long PostgreSQL lets a transaction of the control plane sit idle before ending it (releasing its locks)',
  ),
  dataDir: {
    flag: 'data-dir',
    env: 'PORTCULLIS_DATA_DIR',
    description: 'where the embedded database and generated secrets live',
    schema: z.string().min(1).default('./.portcullis/data'),
    defaultLabel: './.portcullis/data',
  },
  graphqlHost: {
    flag: 'graphql-host',
    env: 'PORTCULLIS_GRAPHQL_HOST',
    description: 'GraphQL listen address',
    schema: host('127.0.0.1'),
    defaultLabel: '127.0.0.1',
  },
  graphqlPort: {
    flag: 'graphql-port',
    env: 'PORTCULLIS_GRAPHQL_PORT',
    description: 'GraphQL listen port',
    schema: port(4000),
    defaultLabel: '4000',
  },
  grpcHost: {
    flag: 'grpc-host',
    env: 'PORTCULLIS_GRPC_HOST',
    description: 'gRPC config-stream listen address',
    schema: host('127.0.0.1'),
    defaultLabel: '127.0.0.1',
  },
  grpcPort: {
    flag: 'grpc-port',
    env: 'PORTCULLIS_GRPC_PORT',
    description: 'gRPC config-stream listen port',
    schema: port(4001),
    defaultLabel: '4001',
  },
  secretKey: {
    flag: 'secret-key',
    env: 'PORTCULLIS_SECRET_KEY',
    description:
      'key encrypting upstream credentials at rest: 32 bytes as hex or base64, optionally "<kid>:<key>"; the same ' +
      'on every replica; generated once into the data dir when unset',
    schema: z.string().min(1).optional(),
  },
  previousSecretKeys: {
    flag: 'previous-secret-keys',
    env: 'PORTCULLIS_SECRET_KEYS_PREVIOUS',
    description: 'comma-separated older keys that still decrypt (after a rotation)',
    schema: listOption().optional(),
  },
  adminToken: {
    flag: 'admin-token',
    env: 'PORTCULLIS_ADMIN_TOKEN',
    description: 'bearer token for the GraphQL API; generated once and kept in the data dir when unset',
    schema: z.string().min(16, 'must be at least 16 characters').optional(),
  },
  adminOidcIssuer: {
    flag: 'admin-oidc-issuer',
    env: 'PORTCULLIS_ADMIN_OIDC_ISSUER',
    description:
      'OIDC sign-in for the GraphQL API: the identity provider issuer (exactly as its tokens iss); with ' +
      '--admin-oidc-audience and --admin-oidc-jwks-uri, its JWTs are accepted beside admin tokens',
    schema: z.string().url('must be a URL').optional(),
  },
  adminOidcAudience: {
    flag: 'admin-oidc-audience',
    env: 'PORTCULLIS_ADMIN_OIDC_AUDIENCE',
    description: 'OIDC sign-in for the GraphQL API: the aud its tokens must carry',
    schema: z.string().min(1).optional(),
  },
  adminOidcJwksUri: {
    flag: 'admin-oidc-jwks-uri',
    env: 'PORTCULLIS_ADMIN_OIDC_JWKS_URI',
    description: "OIDC sign-in for the GraphQL API: the identity provider's JWKS URL",
    schema: z.string().url('must be a URL').optional(),
  },
  adminOidcRoleClaim: {
    flag: 'admin-oidc-role-claim',
    env: 'PORTCULLIS_ADMIN_OIDC_ROLE_CLAIM',
    description:
      'OIDC sign-in for the GraphQL API: the claim naming the role (admin, operator or auditor; a string or an ' +
      'array, the highest wins)',
    schema: z.string().min(1).default('portcullis_roles'),
    defaultLabel: 'portcullis_roles',
  },
  ...graphqlLimitSettings,
} satisfies OptionTable;

/** A whole number within bounds, with errors saying what is expected. */
function count(unit: string, min: number, max: number) {
  return z.coerce
    .number({ error: `must be a number of ${unit}` })
    .int(`must be a whole number of ${unit}`)
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);
}

/** `PORTCULLIS_` and the flag in upper snake case: `sse-retry-ms` → `PORTCULLIS_SSE_RETRY_MS`. */
function envOf(flag: string): string {
  return `PORTCULLIS_${flag.toUpperCase().replaceAll('-', '_')}`;
}

/** A whole-number setting: `--<flag>` or its `PORTCULLIS_` variable, `[unit, min, max]`, default `fallback`. */
function countSetting(
  flag: string,
  [unit, min, max]: readonly [string, number, number],
  fallback: number,
  description: string,
  defaultLabel = String(fallback),
) {
  return { flag, env: envOf(flag), description, schema: count(unit, min, max).default(fallback), defaultLabel };
}

/**
 * A PostgreSQL timeout: `--database-<name>-timeout-ms`, from 100 ms, no upper bound (whole numbers are safe
 * integers already).
 */
function databaseTimeout(name: string, fallback: number, description: string) {
  return countSetting(
    `database-${name}-timeout-ms`,
    ['milliseconds', 100, Number.MAX_SAFE_INTEGER],
    fallback,
    description,
  );
}

/** An SSE bound in bytes: `--sse-<name>`, from 1 KiB; the default is whole MiB. */
function sseBytes(name: string, fallback: number, description: string) {
  return countSetting(
    `sse-${name}`,
    ['bytes', 1024, 2 ** 40],
    fallback,
    description,
    `${fallback} (${fallback / 1024 ** 2} MiB)`,
  );
}

/** An SSE bound in streams: `--sse-<name>`, from 1. */
function sseStreams(name: string, fallback: number, description: string, max = 10_000_000) {
  return countSetting(`sse-${name}`, ['streams', 1, max], fallback, description);
}

/** Code mode's sandbox: warm workers and per-run limits (data-plane/src/code-mode/sandbox-pool.ts). */
export const sandboxSettings = {
  sandboxWorkers: countSetting(
    'sandbox-workers',
    ['workers', 0, 64],
    DEFAULT_SANDBOX_POOL.workers,
    'warm worker threads running code-mode scripts; 0 switches code mode off on this node',
  ),
  sandboxTimeoutMs: countSetting(
    'sandbox-timeout-ms',
    ['milliseconds', 10, 600_000],
    DEFAULT_SANDBOX_LIMITS.timeMs,
    'wall time of one code-mode script, its tool calls included; an overrunning worker is terminated',
  ),
  sandboxMemoryBytes: countSetting(
    'sandbox-memory-bytes',
    ['bytes', 1024 * 1024, 1024 ** 3],
    DEFAULT_SANDBOX_LIMITS.memoryBytes,
    'heap of one code-mode script',
  ),
  sandboxStackBytes: countSetting(
    'sandbox-stack-bytes',
    ['bytes', 16 * 1024, MAX_STACK_BYTES],
    DEFAULT_SANDBOX_LIMITS.stackBytes,
    'stack of one code-mode script (at most 262144)',
  ),
  sandboxMaxToolCalls: countSetting(
    'sandbox-max-tool-calls',
    ['calls', 1, 1_000_000],
    DEFAULT_SANDBOX_LIMITS.maxToolCalls,
    'tool calls one code-mode script may make',
  ),
  sandboxMaxOutputBytes: countSetting(
    'sandbox-max-output-bytes',
    ['bytes', 1024, 64 * 1024 * 1024],
    DEFAULT_SANDBOX_LIMITS.maxOutputBytes,
    "bytes of a code-mode script's return value and console output",
  ),
} satisfies OptionTable;

/** The sandbox pool's options, or undefined when code mode is off (0 workers). */
export function sandboxOptions(settings: ParsedOptions<typeof sandboxSettings>): SandboxPoolOptions | undefined {
  if (settings.sandboxWorkers === 0) return undefined;
  return {
    workers: settings.sandboxWorkers,
    maxQueued: DEFAULT_SANDBOX_POOL.maxQueued,
    limits: {
      timeMs: settings.sandboxTimeoutMs,
      memoryBytes: settings.sandboxMemoryBytes,
      stackBytes: settings.sandboxStackBytes,
      maxToolCalls: settings.sandboxMaxToolCalls,
      maxOutputBytes: settings.sandboxMaxOutputBytes,
    },
  };
}

/**
 * 2025-era SSE streams: how long and how much of them the node keeps for `Last-Event-ID`
 * resumption, and SSE polling (SEP-1699).
 */
export const sseSettings = {
  sseResumeWindowSeconds: countSetting(
    'sse-resume-window-seconds',
    ['seconds', 1, 3600],
    DEFAULT_RESUME_WINDOW_MS / 1000,
    'how long a 2025-era SSE stream stays resumable with Last-Event-ID after its connection dropped or ended; a ' +
      'call whose answer stream dropped keeps running this long without an agent, then is cancelled upstream',
  ),
  sseRetryMs: countSetting(
    'sse-retry-ms',
    ['milliseconds', 10, 60_000],
    DEFAULT_SSE_RETRY_MS,
    'the SSE retry sent in priming events (2025-11-25 sessions): how long agents wait before they reconnect to a ' +
      'closed stream; must be below the resume window',
  ),
  sseMaxStreamSeconds: {
    flag: 'sse-max-stream-seconds',
    env: 'PORTCULLIS_SSE_MAX_STREAM_SECONDS',
    description:
      'SSE polling (SEP-1699), off by default: the node closes each SSE connection of a 2025-11-25 session (POST ' +
      'answer or GET stream) after this long, the call going on; the agent reconnects with Last-Event-ID after the ' +
      'retry and gets the rest. For proxies that cut long connections; sessions of older revisions are never ' +
      'closed this way. With several nodes, route a session to one node (by Mcp-Session-Id): only the node that ' +
      'held a stream can resume it',
    schema: count('seconds', 1, 86_400).optional(),
    defaultLabel: 'off',
  },
  sseMaxEventsPerStream: countSetting(
    'sse-max-events-per-stream',
    ['events', 1, 1_000_000],
    DEFAULT_MAX_EVENTS_PER_STREAM,
    'events kept per SSE stream for resumption (the oldest dropped first)',
  ),
  sseMaxBytesPerStream: sseBytes(
    'max-bytes-per-stream',
    DEFAULT_MAX_BYTES_PER_STREAM,
    'bytes of events kept per SSE stream for resumption (the newest event is always kept)',
  ),
  sseMaxStreams: sseStreams(
    'max-streams',
    DEFAULT_MAX_STREAMS,
    'SSE streams a node keeps resumable at once (the oldest is dropped first; a dropped call stream cancels ' +
      'its call)',
  ),
  sseMaxBytes: sseBytes(
    'max-bytes',
    DEFAULT_MAX_STORE_BYTES,
    'bytes of events a node keeps over all SSE streams (the oldest streams are dropped first); at least ' +
      '--sse-max-bytes-per-stream',
  ),
  sseMaxStreamsPerKey: sseStreams(
    'max-streams-per-key',
    DEFAULT_MAX_STREAMS_PER_KEY,
    'SSE streams one virtual key may keep resumable on a node (its own oldest are dropped first, never another ' +
      "key's)",
  ),
  sseMaxBytesPerKey: sseBytes(
    'max-bytes-per-key',
    DEFAULT_MAX_BYTES_PER_KEY,
    'bytes of events one virtual key may keep on a node over its SSE streams (its own oldest streams are dropped ' +
      'first); never less than --sse-max-bytes-per-stream',
  ),
  sseMaxStreamsPerSession: sseStreams(
    'max-streams-per-session',
    DEFAULT_MAX_STREAMS_PER_SESSION,
    'SSE streams one 2025-era session may keep resumable on a node (its own oldest, ended ones first, are ' +
      'dropped first)',
  ),
  sseMaxBytesPerSession: sseBytes(
    'max-bytes-per-session',
    DEFAULT_MAX_BYTES_PER_SESSION,
    'bytes of events one session may keep on a node over its SSE streams; never less than --sse-max-bytes-per-stream',
  ),
  sseMaxOpenStreamsPerSession: sseStreams(
    'max-open-streams-per-session',
    DEFAULT_MAX_OPEN_STREAMS_PER_SESSION,
    'GET notification streams one 2025-era session may hold open on a node; a new one closes the oldest',
    1_000_000,
  ),
  sseMaxOpenStreamsPerKey: sseStreams(
    'max-open-streams-per-key',
    DEFAULT_MAX_OPEN_STREAMS_PER_KEY,
    'streams (GET /mcp, GET /sse, subscriptions/listen) one virtual key may hold open on a node; a new one ' +
      "closes the key's oldest",
  ),
} satisfies OptionTable;

/**
 * The event store's options from the SSE settings, checking what one flag alone cannot: agents must
 * be able to come back within the window, and one stream's bound must fit in the total.
 */
export function sseOptions(settings: ParsedOptions<typeof sseSettings>): EventStoreOptions {
  const windowMs = settings.sseResumeWindowSeconds * 1000;
  if (settings.sseRetryMs >= windowMs) {
    throw new PortcullisError(
      ErrorCode.BAD_USER_INPUT,
      `--sse-retry-ms (${settings.sseRetryMs}) must be below --sse-resume-window-seconds ` +
        `(${settings.sseResumeWindowSeconds} s): agents reconnect after the retry, and a stream nobody resumed ` +
        `within the window is given up`,
    );
  }
  if (settings.sseMaxBytes < settings.sseMaxBytesPerStream) {
    throw new PortcullisError(
      ErrorCode.BAD_USER_INPUT,
      `--sse-max-bytes (${settings.sseMaxBytes}) must be at least --sse-max-bytes-per-stream ` +
        `(${settings.sseMaxBytesPerStream})`,
    );
  }
  return {
    windowMs,
    retryMs: settings.sseRetryMs,
    maxConnectionMs: settings.sseMaxStreamSeconds === undefined ? undefined : settings.sseMaxStreamSeconds * 1000,
    maxEventsPerStream: settings.sseMaxEventsPerStream,
    maxBytesPerStream: settings.sseMaxBytesPerStream,
    maxStreams: settings.sseMaxStreams,
    maxBytes: settings.sseMaxBytes,
    maxStreamsPerKey: settings.sseMaxStreamsPerKey,
    maxBytesPerKey: settings.sseMaxBytesPerKey,
    maxStreamsPerSession: settings.sseMaxStreamsPerSession,
    maxBytesPerSession: settings.sseMaxBytesPerSession,
    maxOpenStreamsPerSession: settings.sseMaxOpenStreamsPerSession,
    maxOpenStreamsPerKey: settings.sseMaxOpenStreamsPerKey,
  };
}

export const dataPlaneSettings = {
  host: {
    flag: 'host',
    env: 'PORTCULLIS_HOST',
    description: 'MCP listen address',
    schema: host('127.0.0.1'),
    defaultLabel: '127.0.0.1',
  },
  port: {
    flag: 'port',
    env: 'PORTCULLIS_PORT',
    description: 'MCP listen port',
    schema: port(8080),
    defaultLabel: '8080',
  },
  nodeId: {
    flag: 'node-id',
    env: 'PORTCULLIS_NODE_ID',
    description: 'stable name of this node, shown in GraphQL nodes',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 letters, digits, ".", "_" or "-"')
      .optional(),
    defaultLabel: '<hostname>-<port>',
  },
  maxBodyBytes: {
    flag: 'max-body-bytes',
    env: 'PORTCULLIS_MAX_BODY_BYTES',
    description: 'largest request body accepted on /mcp, /messages and /v1/mcp/tool/execute',
    schema: z.coerce
      .number({ error: 'must be a number of bytes' })
      .int()
      .min(1024, 'must be at least 1024')
      .default(4 * 1024 * 1024),
    defaultLabel: '4194304',
  },
  snapshotCache: {
    flag: 'snapshot-cache',
    env: 'PORTCULLIS_SNAPSHOT_CACHE',
    description: 'file keeping the last good config snapshot, so a restart during a control-plane outage still serves',
    schema: z.string().min(1).optional(),
  },
  upstreamConnectTimeoutMs: {
    flag: 'upstream-connect-timeout-ms',
    env: 'PORTCULLIS_UPSTREAM_CONNECT_TIMEOUT_MS',
    description: 'how long connecting to an upstream may take',
    schema: z.coerce.number({ error: 'must be a number of milliseconds' }).int().positive().default(30_000),
    defaultLabel: '30000',
  },
  upstreamCallTimeoutMs: {
    flag: 'upstream-call-timeout-ms',
    env: 'PORTCULLIS_UPSTREAM_CALL_TIMEOUT_MS',
    description: 'how long one upstream call may take',
    schema: z.coerce.number({ error: 'must be a number of milliseconds' }).int().positive().default(60_000),
    defaultLabel: '60000',
  },
  anonymousKey: {
    flag: 'anonymous-key',
    env: 'PORTCULLIS_ANONYMOUS_KEY',
    description:
      'anonymous access (off by default): requests to /mcp and /sse without credentials act as the virtual key ' +
      'with this id (its allow-list applies); a wrong key is still refused, and while the key is revoked or ' +
      'unknown requests without credentials get 401',
    schema: z.string().trim().min(1, 'must be a virtual key id').optional(),
  },
  jwksRefreshCooldownMs: {
    flag: 'jwks-refresh-cooldown-ms',
    env: 'PORTCULLIS_JWKS_REFRESH_COOLDOWN_MS',
    description:
      "MCP authorization: after fetching an issuer's signing keys, how long a token with an unknown key id waits " +
      'before it may trigger another fetch (a flood of forged key ids costs one fetch per period)',
    schema: z.coerce.number({ error: 'must be a number of milliseconds' }).int().min(0).max(3_600_000).default(30_000),
    defaultLabel: '30000',
  },
  approvalTimeoutSeconds: {
    flag: 'approval-timeout-seconds',
    env: 'PORTCULLIS_APPROVAL_TIMEOUT_SECONDS',
    description:
      'how long a call held for approval (execution policy APPROVE) waits for a decision when its rule sets no ' +
      'approvalTimeoutMs; it is then refused as timed out',
    schema: z.coerce
      .number({ error: 'must be a number of seconds' })
      .int('must be a whole number of seconds')
      .min(1, 'must be at least 1')
      .max(7 * 24 * 3600, 'must be at most 604800 (a week)')
      .default(300),
    defaultLabel: '300 (5 min)',
  },
  sessionMaxAgeSeconds: {
    flag: 'session-max-age-seconds',
    env: 'PORTCULLIS_SESSION_MAX_AGE_SECONDS',
    description:
      'how long a 2025-era MCP session id is honoured after it was issued; the agent then gets 404 and initializes ' +
      'a new session (ended sessions are remembered this long)',
    schema: z.coerce
      .number({ error: 'must be a number of seconds' })
      .int('must be a whole number of seconds')
      .min(60, 'must be at least 60')
      .max(30 * 24 * 3600, 'must be at most 2592000 (30 days)')
      .default(24 * 3600),
    defaultLabel: '86400 (24 h)',
  },
  allowedHosts: {
    flag: 'allowed-hosts',
    env: 'PORTCULLIS_ALLOWED_HOSTS',
    description:
      'comma-separated host[:port] list (no port: any port) accepted as Host, and as Origin when sent, on /mcp, ' +
      '/sse and /messages, else 403 (DNS-rebinding protection); it replaces the default: when listening on a ' +
      'loopback address, localhost, 127.0.0.1 and [::1] on any port; on any other address no check',
    schema: z
      .string()
      .transform((v, ctx) => {
        try {
          return parseAllowedHosts(v);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: (error as Error).message });
          return z.NEVER;
        }
      })
      .optional(),
    defaultLabel: 'loopback names when --host is loopback, else no check',
  },
  maxInFlightPerKey: countSetting(
    'max-in-flight-per-key',
    ['requests', 1, 1_000_000],
    DEFAULT_MAX_IN_FLIGHT_PER_KEY,
    'MCP requests one virtual key may have running on this node at once, over all its sessions and transports; ' +
      'more are answered at once with JSON-RPC error -32046',
  ),
  maxInFlightPerSession: countSetting(
    'max-in-flight-per-session',
    ['requests', 1, 1_000_000],
    DEFAULT_MAX_IN_FLIGHT_PER_SESSION,
    'MCP requests one 2025-era session (Streamable HTTP or legacy SSE) may have running on this node at once; ' +
      'more are answered at once with JSON-RPC error -32046',
  ),
  ...rateLimitSettings,
  ...sseSettings,
  ...nodeHealthSettings,
  ...sandboxSettings,
  ...auditSettings,
} satisfies OptionTable;

/** The data-plane node's options from its parsed settings. */
export function dataPlaneOptions(
  settings: ParsedOptions<typeof dataPlaneSettings>,
  connection: ControlPlaneConnection,
  logger: Logger,
): DataPlaneOptions {
  const nodeId = settings.nodeId ?? `${hostname()}-${settings.port}`;
  return {
    ...connection,
    ...nodeHealthOptions(settings),
    ...rateLimitOptions(settings),
    nodeId,
    audit: auditOptions(settings, nodeId, settings.port),
    host: settings.host,
    port: settings.port,
    maxBodyBytes: settings.maxBodyBytes,
    snapshotCache: settings.snapshotCache,
    upstreamConnectTimeoutMs: settings.upstreamConnectTimeoutMs,
    upstreamCallTimeoutMs: settings.upstreamCallTimeoutMs,
    anonymousKeyId: settings.anonymousKey,
    jwksRefreshCooldownMs: settings.jwksRefreshCooldownMs,
    sessionMaxAgeMs: settings.sessionMaxAgeSeconds * 1000,
    approvalTimeoutMs: settings.approvalTimeoutSeconds * 1000,
    allowedHosts: settings.allowedHosts,
    sse: sseOptions(settings),
    callAdmission: { maxPerKey: settings.maxInFlightPerKey, maxPerSession: settings.maxInFlightPerSession },
    sandbox: sandboxOptions(settings),
    logger,
  };
}

/** OIDC sign-in for the GraphQL API from its flags: all three of issuer, audience and JWKS URL, or none. */
export function adminOidc(settings: {
  adminOidcIssuer?: string | undefined;
  adminOidcAudience?: string | undefined;
  adminOidcJwksUri?: string | undefined;
  adminOidcRoleClaim: string;
}): AdminOidcOptions | undefined {
  const { adminOidcIssuer: issuer, adminOidcAudience: audience, adminOidcJwksUri: jwksUri } = settings;
  if (issuer === undefined && audience === undefined && jwksUri === undefined) return undefined;
  if (issuer === undefined || audience === undefined || jwksUri === undefined)
    throw new PortcullisError(
      ErrorCode.BAD_CONFIG,
      'OIDC sign-in for the GraphQL API needs --admin-oidc-issuer, --admin-oidc-audience and --admin-oidc-jwks-uri ' +
        'together; give all three or none',
      { field: 'adminOidcIssuer' },
    );
  return { issuer, audience, jwksUri, roleClaim: settings.adminOidcRoleClaim };
}
