import { credentials, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';

/** TLS of the node's config stream: whom it trusts and, for mTLS, the certificate it presents. */
export interface ConfigStreamTls {
  /** PEM CA bundle the control plane's certificate must chain to; undefined: the system's roots. */
  readonly ca?: Buffer;
  /** PEM client certificate (chain) and its key, for a control plane that authenticates nodes by certificate. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** The name expected in the control plane's certificate, when it is not the host of the address. */
  readonly serverName?: string;
}

/** How fast a node comes back after losing the control plane. */
export interface ReconnectBackoff {
  /** First wait after a failure (and between replicas of one round). */
  readonly initialMs: number;
  /** Longest wait: a control plane that returns is found again within about this long. */
  readonly maxMs: number;
}

/**
 * grpc-js's own default (1 s growing to 120 s) kept nodes cut off for up to two minutes after a
 * control-plane outage; bounded to 5 s they came back in 2–3 s (STACK.md).
 */
export const DEFAULT_RECONNECT: ReconnectBackoff = { initialMs: 100, maxMs: 5_000 };

export function channelCredentials(tls: ConfigStreamTls | undefined): ChannelCredentials {
  if (tls === undefined) return credentials.createInsecure();
  return credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
}

/** Keepalive (a dead control plane is noticed within 15 s), the reconnect backoff, and the TLS name. */
export function channelOptions(reconnect: ReconnectBackoff, tls: ConfigStreamTls | undefined): ChannelOptions {
  return {
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.initial_reconnect_backoff_ms': reconnect.initialMs,
    'grpc.max_reconnect_backoff_ms': reconnect.maxMs,
    ...(tls?.serverName === undefined ? {} : { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName }),
  };
}
