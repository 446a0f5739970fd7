import { createLogger } from '../../common/src/index.ts';
import { Transport, UpstreamConfig, UpstreamState, type UpstreamReport } from '../../proto/gen/portcullis/v1/config.ts';
import { stateName } from '../../data-plane/src/upstream/upstream-connection.ts';
import { UpstreamPool } from '../../data-plane/src/upstream/upstream-pool.ts';
import type { UpstreamDefaults } from '../../data-plane/src/upstream/upstream-settings.ts';
import { EVERYTHING_SERVER, REPO_ROOT } from './processes.ts';
import { resolve } from 'node:path';
import { eventually } from './eventually.ts';

export const MEMORY_SERVER = resolve(REPO_ROOT, 'node_modules/@modelcontextprotocol/server-memory/dist/index.js');
export const FILESYSTEM_SERVER = resolve(
  REPO_ROOT,
  'node_modules/@modelcontextprotocol/server-filesystem/dist/index.js',
);

let nextId = 1;

/** An UpstreamConfig as a snapshot would carry it, every field at its default unless given. */
export function upstreamConfig(fields: Partial<UpstreamConfig> & { name: string }): UpstreamConfig {
  return UpstreamConfig.fromPartial({ id: `up-${nextId++}`, configHash: 'h1', ...fields });
}

export function stdioUpstream(
  name: string,
  command: string,
  args: string[],
  fields: Partial<UpstreamConfig> = {},
): UpstreamConfig {
  return upstreamConfig({ name, transport: Transport.TRANSPORT_STDIO, command, args, ...fields });
}

export function everythingStdio(name: string, fields: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return stdioUpstream(name, process.execPath, [EVERYTHING_SERVER, 'stdio'], fields);
}

export function httpUpstream(name: string, url: string, fields: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return upstreamConfig({ name, transport: Transport.TRANSPORT_STREAMABLE_HTTP, url, ...fields });
}

export function sseUpstream(name: string, url: string, fields: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return upstreamConfig({ name, transport: Transport.TRANSPORT_SSE, url, ...fields });
}

export const TEST_DEFAULTS: UpstreamDefaults = {
  connectTimeoutMs: 15_000,
  callTimeoutMs: 15_000,
  healthIntervalMs: 15_000,
  healthFailureThreshold: 3,
};

/** A pool as a node runs it, recording every report it would send to the control plane. */
export class PoolHarness {
  readonly reports: UpstreamReport[] = [];
  /** Every deviation the pool carried, as `<upstream>:<kind>`. */
  readonly deviations: string[] = [];
  readonly pool: UpstreamPool;

  constructor(defaults: Partial<UpstreamDefaults> = {}) {
    this.pool = new UpstreamPool({
      clientInfo: { name: 'portcullis-test', version: '0.0.0' },
      defaults: { ...TEST_DEFAULTS, ...defaults },
      logger: createLogger({ level: (process.env['PORTCULLIS_LOG_LEVEL'] as 'silent') ?? 'silent' }),
      onReport: (report) => this.reports.push(report),
      onDeviation: (upstream, kind) => this.deviations.push(`${upstream}:${kind}`),
    });
  }

  static start(configs: readonly UpstreamConfig[], defaults: Partial<UpstreamDefaults> = {}): PoolHarness {
    const harness = new PoolHarness(defaults);
    harness.pool.apply(configs);
    return harness;
  }

  connection(name: string) {
    const connection = this.pool.connectionList.find((c) => c.name === name);
    if (!connection) throw new Error(`no upstream ${name}`);
    return connection;
  }

  state(name: string): UpstreamState {
    return this.connection(name).current.state;
  }

  /** Resolves when the upstream is in `state`; fails with its last state and error after `timeoutMs`. */
  async waitForState(name: string, state: UpstreamState, timeoutMs = 15_000): Promise<number> {
    const started = Date.now();
    const current = () => this.connection(name).current;
    await eventually(`${name} to become ${stateName(state)}`, () => current().state === state, timeoutMs).catch(() => {
      const { state: last, error } = current();
      throw new Error(
        `${name} did not become ${stateName(state)} within ${timeoutMs} ms: ${stateName(last)} ` +
          `(${error ?? 'no error'})`,
      );
    });
    return Date.now() - started;
  }

  /** The last report about this upstream. */
  lastReport(name: string): UpstreamReport | undefined {
    const id = this.connection(name).config.id;
    return this.reports.filter((r) => r.upstreamId === id).at(-1);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * What a describe block starts (pools, servers, processes), closed in reverse order by its `after(() =>
 * scope.close())`.
 */
export class PoolScope {
  readonly cleanups: (() => Promise<unknown> | unknown)[] = [];

  /** A started pool, closed with the scope. */
  readonly pool = (...args: Parameters<typeof PoolHarness.start>): PoolHarness => {
    const harness = PoolHarness.start(...args);
    this.cleanups.push(() => harness.close());
    return harness;
  };

  async close(): Promise<void> {
    for (const cleanup of this.cleanups.splice(0).reverse()) await cleanup();
  }
}

export const READY = UpstreamState.UPSTREAM_STATE_READY;
export const DOWN = UpstreamState.UPSTREAM_STATE_DOWN;
export const DEGRADED = UpstreamState.UPSTREAM_STATE_DEGRADED;
export const DISABLED = UpstreamState.UPSTREAM_STATE_DISABLED;
export const CONNECTING = UpstreamState.UPSTREAM_STATE_CONNECTING;

/** The text of a CallToolResult's first content block. */
export function firstText(result: Record<string, unknown>): string {
  const content = result['content'] as { type: string; text?: string }[] | undefined;
  return content?.[0]?.text ?? '';
}
