/** The shape of everything a run produces; the table and the JSON file are both views of it. */

export type UpstreamKind = 'stdio' | 'http';
/**
 * `floor-proxy`: a byte-forwarding proxy doing nothing else (targets/floor-proxy.ts), the floor for any Node proxy in
 * front of an HTTP upstream.
 */
export type PathKind =
  | 'direct'
  | 'floor-proxy'
  | 'portcullis'
  | 'mcp-proxy'
  | 'supergateway'
  | GatewayVariantPath
  | `portcullis@${string}`;

/** The current tree's gateway started otherwise (bench/src/targets/variants.ts), measured beside `portcullis`. */
export type GatewayVariantPath = 'portcullis (audit off)' | 'portcullis (limits on)';

export interface RoundTripRow {
  method: 'tools/call' | 'tools/list';
  /** For tools/list rows: how many tools the upstream offers. */
  upstreamTools?: number;
  /** For gateway rows where it matters: virtual keys configured while measured. */
  keysConfigured?: number;
  upstream: UpstreamKind;
  path: PathKind;
  driver: 'lean' | 'sdk';
  concurrency: number;
  /** Set when the row could not be measured; no figures then. */
  failed?: string;
  calls?: number;
  /** The time cap stopped the measured phase before the profile's call count. */
  truncated?: boolean;
  errors?: number;
  firstError?: string;
  p50Ms?: number;
  p99Ms?: number;
  meanMs?: number;
  callsPerSec?: number;
  /** CPU per call of the process under test: the server (direct), the proxy or the gateway. */
  cpuPerCallMs?: number;
  /** CPU per call of its descendants (a proxy's or gateway's stdio upstream). */
  childrenCpuPerCallMs?: number;
  clientCpuPerCallMs?: number;
  protocolVersion?: string;
  /** p50 of this row over p50 of the direct row with the same method, upstream, driver and concurrency. */
  p50VsDirect?: number;
  /** Throughput of this row over the direct row's. */
  throughputVsDirect?: number;
  /** Extra figures from probes (e.g. the gateway's own added time from its histogram). */
  extra?: Record<string, number | string>;
}

export interface TargetCheck {
  target: string;
  /** The measured figure in the unit of the target, or undefined when it was not measured. */
  measured?: number;
  unit: string;
  met?: boolean;
  why?: string;
  /** The same figure for a reference measured in the same run (the floor proxy), for reading the target against. */
  reference?: string;
}

export interface RunResults {
  rows: RoundTripRow[];
  /** Other measured sections (tools/list, propagation, snapshots) as they land: name → rows. */
  sections: Record<string, unknown[]>;
  /** Lines explaining what was not measured and how things were run. */
  notes: string[];
  targets: TargetCheck[];
}

/** Fills in the ratios to the direct path. */
export function addRatios(rows: RoundTripRow[]): void {
  for (const row of rows) {
    const direct = rows.find(
      (d) =>
        d.path === 'direct' &&
        d.method === row.method &&
        d.upstreamTools === row.upstreamTools &&
        d.upstream === row.upstream &&
        d.driver === row.driver &&
        d.concurrency === row.concurrency &&
        !d.failed,
    );
    if (!direct || row.failed) continue;
    if (row.p50Ms !== undefined && direct.p50Ms) row.p50VsDirect = row.p50Ms / direct.p50Ms;
    if (row.callsPerSec !== undefined && direct.callsPerSec)
      row.throughputVsDirect = row.callsPerSec / direct.callsPerSec;
  }
}
