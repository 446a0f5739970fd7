import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  LATEST_PROTOCOL_VERSION,
  LOG_LEVEL_META_KEY,
  PROTOCOL_VERSION_META_KEY,
  ProtocolErrorCode,
  SERVER_INFO_META_KEY,
  SUBSCRIPTION_ID_META_KEY,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@modelcontextprotocol/server';

export {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  LOG_LEVEL_META_KEY,
  PROTOCOL_VERSION_META_KEY,
  SERVER_INFO_META_KEY,
  SUBSCRIPTION_ID_META_KEY,
};

/** The stateless revisions served (requests carry their own `_meta` envelope; no session). */
export const MODERN_PROTOCOL_VERSIONS: readonly string[] = ['2026-07-28'];

/** The 2025-era revisions an `initialize` may negotiate, newest first (the SDK's own list). */
export const LEGACY_PROTOCOL_VERSIONS: readonly string[] = SUPPORTED_PROTOCOL_VERSIONS;

/** What an `initialize` asking for an unknown revision is answered with. */
export const LATEST_LEGACY_PROTOCOL_VERSION: string = LATEST_PROTOCOL_VERSION;

/** Whether a revision belongs to the stateless (2026-07-28+) era; ISO dates order lexicographically. */
export function isModernProtocolVersion(version: string): boolean {
  return version >= '2026-07-28';
}

/**
 * JSON-RPC error codes the gateway answers with. The spec and SDK codes are the SDK's own
 * constants; the transport codes are what the SDK's HTTP transports answer with; the gateway's
 * own codes sit in the implementation-defined server range.
 */
export const RpcErrorCode = {
  ParseError: ProtocolErrorCode.ParseError,
  InvalidRequest: ProtocolErrorCode.InvalidRequest,
  MethodNotFound: ProtocolErrorCode.MethodNotFound,
  InvalidParams: ProtocolErrorCode.InvalidParams,
  InternalError: ProtocolErrorCode.InternalError,
  /** 2026-07-28: the request names a protocol revision this server does not serve (data: supported, requested). */
  UnsupportedProtocolVersion: ProtocolErrorCode.UnsupportedProtocolVersion,
  /**
   * 2026-07-28: the request needs a client capability the client did not declare; answered with HTTP 400 wherever it
   * comes from.
   */
  MissingRequiredClientCapability: ProtocolErrorCode.MissingRequiredClientCapability,
  /**
   * HTTP-level refusals (406, 415, 413, 405, missing session header, bad protocol header): the SDK transports' code.
   */
  TransportError: -32000,
  /** The `Mcp-Session-Id` is not (or no longer) valid: the client must initialize again (HTTP 404). */
  SessionNotFound: -32001,
  /** 2026-07-28: the standard `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name` headers disagree with the body. */
  HeaderMismatch: -32020,
  /** No valid virtual key was presented (HTTP 401). */
  Unauthenticated: -32040,
  /** The node has no configuration snapshot yet (HTTP 503). */
  NotReady: -32041,
  /**
   * The `Host` or `Origin` header is not an allowed host of this node (HTTP 403, DNS-rebinding protection); data names
   * the header.
   */
  Forbidden: -32042,
  /** The tool's upstream could not answer (unavailable, failed); data names the upstream. */
  UpstreamUnavailable: -32043,
  /**
   * 2026-07-28: a retry's requestState can no longer be answered (expired, already answered, or its call is gone); data
   * says why.
   */
  InputNotAwaited: -32044,
  /**
   * 2026-07-28: a retry's requestState names another gateway node, which holds the waiting call, and the retry could
   * not be relayed there; data names it.
   */
  InputOnOtherNode: -32045,
  /**
   * The key or session already has as many requests in flight on this node as it may (data: scope, limit); retry once
   * some finished.
   */
  TooManyInFlight: -32046,
  /**
   * 2025 era: a resumed answer stream (Last-Event-ID) this node cannot serve: another node held it (maybe one that is
   * gone) or it expired; the request's result is lost (data: reason).
   */
  StreamLost: -32047,
  /** The node's audit spool is full and the node is set to refuse new calls until its backlog is shipped (HTTP 503). */
  AuditUnavailable: -32048,
  /**
   * A rate limit of the key, its team or its customer is used up on this node (HTTP 429 with
   * Retry-After where the transport allows); data names the limit and `retryAfterSeconds`.
   */
  RateLimited: -32049,
  /**
   * A budget of the key, its team or its customer cannot pay for the call on this node (HTTP 429,
   * Retry-After at the period's end, or in a second while a top-up of the node's lease may come);
   * data names the budget's scope and owner and whether it is exhausted for the period.
   */
  BudgetExhausted: -32050,
} as const;
export type RpcErrorCode = (typeof RpcErrorCode)[keyof typeof RpcErrorCode];

/** Largest JSON-RPC batch accepted (2025 era), as in the SDK's HTTP transport. */
export const MAX_BATCH_SIZE = 100;

/** What the gateway advertises with no upstream connected: tools, with list_changed notifications. */
export const SERVER_CAPABILITIES = Object.freeze({ tools: Object.freeze({ listChanged: true }) });

/**
 * Cache hints of list results on 2026-07-28: lists depend on the key, so private. The TTL defaults
 * to 0 (as the SDK's): a key's view changes with any snapshot and any upstream catalog, and the
 * gateway announces those changes on `subscriptions/listen` streams rather than promising a lifetime.
 */
export const LIST_CACHE_TTL_MS = 0;
export const LIST_CACHE_SCOPE = 'private';

/** The 2025-era Tasks extension's request methods (task ids are wrapped to name their upstream). */
export const TASK_METHODS: ReadonlySet<string> = new Set(['tasks/get', 'tasks/result', 'tasks/cancel', 'tasks/list']);

/** RFC 5424 severities as MCP names them, least severe first. */
export const LOGGING_LEVELS: readonly string[] = [
  'debug',
  'info',
  'notice',
  'warning',
  'error',
  'critical',
  'alert',
  'emergency',
];

/**
 * The capabilities the gateway advertises: what the merged upstreams offer. Tools always (the
 * gateway raises tools list_changed itself); prompts, resources (subscribe when any upstream
 * can), completions, logging and (2025 era) tasks when at least one upstream declares them;
 * extensions and experimental entries are passed through, the first upstream naming one wins.
 */
export function mergeUpstreamCapabilities(
  upstreams: readonly { readonly capabilities: Readonly<Record<string, unknown>> | undefined }[],
  era: 'modern' | 'legacy',
): Record<string, unknown> {
  const merged: Record<string, unknown> = { tools: { listChanged: true } };
  let prompts = false;
  let resources = false;
  let subscribe = false;
  let completions = false;
  let logging = false;
  let tasks: Record<string, unknown> | undefined;
  let extensions: Record<string, unknown> | undefined;
  let experimental: Record<string, unknown> | undefined;
  for (const upstream of upstreams) {
    const c = upstream.capabilities;
    if (c === undefined) continue;
    if (isObject(c['prompts'])) prompts = true;
    if (isObject(c['resources'])) {
      resources = true;
      if (c['resources']['subscribe'] === true) subscribe = true;
    }
    if (isObject(c['completions'])) completions = true;
    if (isObject(c['logging'])) logging = true;
    if (isObject(c['tasks'])) tasks = mergeDeep(tasks ?? {}, c['tasks']);
    if (isObject(c['extensions'])) extensions = { ...c['extensions'], ...extensions };
    if (isObject(c['experimental'])) experimental = { ...c['experimental'], ...experimental };
  }
  if (prompts) merged['prompts'] = { listChanged: true };
  if (resources) merged['resources'] = subscribe ? { subscribe: true, listChanged: true } : { listChanged: true };
  if (completions) merged['completions'] = {};
  if (logging) merged['logging'] = {};
  if (tasks !== undefined && era === 'legacy') merged['tasks'] = tasks;
  if (extensions !== undefined) merged['extensions'] = extensions;
  if (experimental !== undefined) merged['experimental'] = experimental;
  return merged;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The union of two capability objects (`{}` leaves kept, nested objects merged). */
function mergeDeep(into: Record<string, unknown>, from: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...into };
  for (const [key, value] of Object.entries(from))
    out[key] =
      isObject(value) && isObject(out[key]) ? mergeDeep(out[key], value) : isObject(out[key]) ? out[key] : value;
  return out;
}

/** The request `_meta` keys that belong to the agent↔gateway exchange and are not forwarded upstream. */
export const ENVELOPE_META_KEYS: ReadonlySet<string> = new Set([
  PROTOCOL_VERSION_META_KEY,
  CLIENT_INFO_META_KEY,
  CLIENT_CAPABILITIES_META_KEY,
  LOG_LEVEL_META_KEY,
]);
