import { UpstreamState, type UpstreamConfig } from '../../../proto/gen/portcullis/v1/config.ts';

/**
 * What `/readyz` waits for: `config`, a configuration snapshot; `upstreams` (default), also that every
 * enabled upstream of the first snapshot has connected or failed once, so that a load balancer sends
 * no agent to a node whose tools are not listed yet.
 */
export type ReadyWhen = 'config' | 'upstreams';

export interface ReadinessOptions {
  readonly readyWhen: ReadyWhen;
  /** `upstreams`: ready anyway this long after the first snapshot, however slow an upstream is. */
  readonly upstreamTimeoutMs: number;
  /**
   * Not ready while the configuration may be older than this (the control plane unreachable for that
   * long); undefined (default): a node keeps serving its last snapshot through any outage.
   */
  readonly maxConfigAgeMs?: number;
}

export const DEFAULT_READINESS: ReadinessOptions = { readyWhen: 'upstreams', upstreamTimeoutMs: 30_000 };

export type ReadinessState = { readonly ready: true } | { readonly ready: false; readonly reason: string };

/** What readiness reads from the node. */
export interface ReadinessSource {
  /** Whether the node serves a configuration. */
  hasConfig(): boolean;
  /** See ConfigClient.configAgeMs. */
  configAgeMs(): number | undefined;
}

/**
 * The node's readiness. The upstream gate holds only at startup: once passed it stays passed, so an
 * upstream added or restarting later never takes a serving node out of its load balancer (calls to
 * its tools answer "unavailable" meanwhile).
 */
export class NodeReadiness {
  private readonly settled = new Set<string>();
  /** Enabled upstreams of the first snapshot that have neither connected nor failed yet. */
  private waiting: Set<string> | undefined;
  private deadline: number | undefined;
  private upstreamsPassed: boolean;

  constructor(
    private readonly options: ReadinessOptions,
    private readonly source: ReadinessSource,
    private readonly now: () => number = Date.now,
  ) {
    this.upstreamsPassed = options.readyWhen === 'config';
  }

  /** A snapshot was applied; the first one fixes the upstreams to wait for. */
  configApplied(upstreams: readonly UpstreamConfig[]): void {
    if (this.waiting !== undefined || this.upstreamsPassed) return;
    this.waiting = new Set(upstreams.filter((u) => !u.disabled && !this.settled.has(u.id)).map((u) => u.id));
    this.deadline = this.now() + this.options.upstreamTimeoutMs;
  }

  /** An upstream's state changed: any state but CONNECTING means it connected or failed once. */
  upstreamState(upstreamId: string, state: UpstreamState): void {
    if (this.upstreamsPassed || state === UpstreamState.UPSTREAM_STATE_CONNECTING) return;
    this.settled.add(upstreamId);
    this.waiting?.delete(upstreamId);
  }

  check(): ReadinessState {
    if (!this.source.hasConfig()) return { ready: false, reason: 'no configuration snapshot yet' };
    if (!this.upstreamsPassed) {
      const waiting = this.waiting?.size ?? 0;
      if (waiting > 0 && this.now() < (this.deadline ?? 0))
        return { ready: false, reason: `waiting for ${waiting} upstream(s) to connect` };
      this.upstreamsPassed = true;
      this.waiting = undefined;
    }
    const limit = this.options.maxConfigAgeMs;
    if (limit !== undefined) {
      const age = this.source.configAgeMs();
      if (age !== undefined && age > limit) {
        return {
          ready: false,
          reason:
            `configuration may be stale: no control plane for ${Math.round(age / 1000)} s (limit ` +
            `${Math.round(limit / 1000)} s)`,
        };
      }
    }
    return { ready: true };
  }
}
