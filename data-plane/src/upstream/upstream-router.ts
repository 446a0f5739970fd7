import type { Cancellation } from './cancellation.ts';

/**
 * The contract between the downstream MCP side (data-plane/src/mcp, data-plane/src/http) and the
 * upstream side (data-plane/src/upstream) beyond tools: every capability of the merged upstreams,
 * relayed requests with progress, cancellation and server-to-client requests, and notifications.
 *
 * The upstream side implements it (UpstreamPool); the downstream side consumes it. Names agents
 * see are `<upstream>__<name>` for tools and prompts (or the bare name for an upstream exposed
 * unprefixed); resource URIs are never rewritten.
 */

/** The catalogs a node keeps per upstream and merges, in upstream order. */
export type CatalogKind = 'tools' | 'prompts' | 'resources' | 'resourceTemplates';

/** One catalog entry as agents see it: the upstream's JSON object, with `name` exposed for tools/prompts. */
export interface CatalogEntry {
  readonly upstreamName: string;
  /** tools/prompts: the exposed name; resources: the URI; templates: the URI template. */
  readonly key: string;
  /** tools/prompts: the upstream's own name; resources/templates: same as `key`. */
  readonly upstreamKey: string;
  /** The object to put in list results (name already exposed). */
  readonly definition: Readonly<Record<string, unknown>>;
}

/** A JSON-RPC notification or request as plain JSON. */
export interface RpcMessage {
  readonly method: string;
  readonly params?: Record<string, unknown>;
}

export interface RelayOptions {
  /** Aborting sends `notifications/cancelled` upstream and rejects (`signalCancellation` wraps an AbortSignal). */
  cancellation?: Cancellation;
  /**
   * Who is asking (a 2025-era agent's session id): over stdio and SSE, where the protocol does not
   * relate a server-to-client request to a call, a request raised while only this agent's calls are
   * in flight can still go to it. Absent: the call shares that with no other.
   */
  agent?: string;
  /** Overrides the upstream's call timeout. */
  timeoutMs?: number;
  /** The agent's request `_meta`, minus what the gateway owns (progress tokens are mapped by the relay). */
  meta?: Record<string, unknown>;
  /**
   * W3C trace context of the gateway's span for this call (traces on): sent as the `traceparent` header to a
   * Streamable HTTP upstream, and as `_meta.traceparent` to stdio and SSE upstreams.
   */
  traceparent?: string;
  /** Progress the upstream reports for this request (`notifications/progress` params, agent's token restored). */
  onProgress?: (params: Record<string, unknown>) => void;
  /** Other notifications the upstream relates to this request (e.g. `notifications/message`). */
  onNotification?: (notification: RpcMessage) => void;
  /**
   * Server-to-client requests the upstream makes while serving this request (sampling,
   * elicitation, roots). Resolves with the agent's result; rejects with an UpstreamRpcError to
   * answer with an error. Absent: the relay answers "method not found".
   */
  onRequest?: (request: RpcMessage) => Promise<Record<string, unknown>>;
  /**
   * A 2026-07-28 upstream's `input_required` result is resolved with as it came (for a 2026-07-28
   * agent to answer, keys and request state intact) instead of being fulfilled through `onRequest`.
   */
  returnInputRequired?: boolean;
}

/** What an upstream told the node about itself. */
export interface UpstreamInfo {
  readonly name: string;
  readonly exposeUnprefixed: boolean;
  /** The upstream's server capabilities (from initialize or server/discover), when connected. */
  readonly capabilities: Readonly<Record<string, unknown>> | undefined;
  readonly protocolVersion: string | undefined;
}

export interface UpstreamRouter {
  /** Every ready upstream, in configured order. */
  upstreams(): readonly UpstreamInfo[];
  /** A merged catalog; filtering by key is the caller's job. */
  catalog(kind: CatalogKind): readonly CatalogEntry[];
  /** The catalog entry with this exposed name/URI, or undefined. */
  find(kind: CatalogKind, key: string): CatalogEntry | undefined;
  /**
   * The upstream that serves `uri` among those `usable` admits (the asking key's; all when
   * omitted): the first upstream listing it, else the first whose resource template matches it
   * (upstream order), else undefined.
   */
  routeResource(uri: string, usable?: (upstream: string) => boolean): string | undefined;
  /**
   * Relays one request to the named upstream (method and params as the upstream must see them:
   * names already un-prefixed) and resolves with its result JSON unchanged. Rejects with
   * UpstreamRpcError for a JSON-RPC error from the upstream and with PortcullisError
   * (UPSTREAM_UNAVAILABLE / UPSTREAM_ERROR, message naming the upstream) when it cannot answer.
   */
  request(upstreamName: string, message: RpcMessage, options?: RelayOptions): Promise<Record<string, unknown>>;
  /** Sends a notification to the named upstream (e.g. `notifications/roots/list_changed`). */
  notify(upstreamName: string, message: RpcMessage): Promise<void>;
  /** Called when a merged catalog changes. Returns an unsubscribe function. */
  onCatalogChanged(listener: (kind: CatalogKind) => void): () => void;
  /**
   * Notifications an upstream sends outside any request (e.g. `notifications/resources/updated`,
   * `notifications/message`). Returns an unsubscribe function.
   */
  onUpstreamNotification(listener: (upstreamName: string, notification: RpcMessage) => void): () => void;
}
