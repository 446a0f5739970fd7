/**
 * Issue 14, in service: the node CPU per call that audit recording adds, read from a node recording against one
 * started with `--audit off` (each with its own control plane, on the real PostgreSQL when it answers), in short
 * passes paced to one rate that both nodes run at the same time, pinned together to a core of their own when the
 * machine can (bench/src/node-ab.ts). Run side by side, the two share the machine's moment: two identical nodes
 * measured so differed by a quartile range of 7 µs a call where passes one after the other gave 14, and their
 * main threads' by about 2. The calls rows of one run read the same difference from two long passes, which a busy
 * machine moves by more than recording costs.
 */
import { AUDIT_ADDED_US_TARGET } from '../report/comparisons.ts';
import type { TargetCheck } from '../results.ts';
import { canPin, perCallUs, runNodeAb, threadsProbe } from '../node-ab.ts';
import { percentile } from '../stats.ts';
import { adminQuery } from './databases.ts';

export interface AuditCostOptions {
  readonly pairs: number;
  readonly calls: number;
  readonly ratePerSec: number;
  readonly postgresUrl: string;
  /** Pin the nodes to a core of their own; default: when the machine can (Linux, `taskset`, two CPUs or more). */
  readonly pin?: boolean;
}

export interface AuditCostRow {
  pairs: number;
  callsPerPass: number;
  ratePerSec: number;
  pinned: boolean;
  database: 'postgres' | 'embedded';
  /** Node CPU µs per call, recording on and off: the median over the passes. */
  onUs: number;
  offUs: number;
  /** On − off of each pair: the median and quartiles. */
  addedUs: number;
  addedQ1Us: number;
  addedQ3Us: number;
  /** On − off of each node's CPU over all its passes, gaps included (shipping after a pass counts too). */
  addedWholeRunUs: number;
  /** On − off of the nodes' main threads (the event loop) and of their other threads (GC helpers, libuv's pool). */
  addedMainUs: number;
  addedOtherUs: number;
}

export async function measureAuditCost(
  options: AuditCostOptions,
  progress: (line: string) => void,
): Promise<AuditCostRow> {
  const pinned = options.pin ?? canPin();
  const postgres = await adminQuery(options.postgresUrl, 'SELECT 1').then(
    () => true,
    () => false,
  );
  const result = await runNodeAb(
    {
      a: { nodeArgs: [] },
      b: { nodeArgs: ['--audit', 'off'] },
      passes: options.pairs,
      calls: options.calls,
      concurrency: 32,
      driver: 'lean',
      ratePerSec: options.ratePerSec,
      ...(postgres ? { postgresUrl: options.postgresUrl } : {}),
      pin: pinned,
      together: true,
      probes: (pid) => [threadsProbe(pid)],
    },
    ({ pair, differenceUs }) =>
      progress(`audit cost: pair ${pair}/${options.pairs}, recording added ${(-differenceUs).toFixed(1)} µs a call`),
  );
  const median = (values: number[]) => percentile(Float64Array.from(values).sort(), 50);
  const probe = (pair: (typeof result.pairs)[number], side: 'a' | 'b', name: string) => Number(pair[side].probes[name]);
  const added = (name: string) => median(result.pairs.map((p) => probe(p, 'a', name) - probe(p, 'b', name)));
  // The A/B reads B − A with A recording: recording adds the opposite.
  return {
    pairs: result.pairs.length,
    callsPerPass: options.calls,
    ratePerSec: options.ratePerSec,
    pinned,
    database: postgres ? 'postgres' : 'embedded',
    onUs: median(result.pairs.map((p) => perCallUs(p.a))),
    offUs: median(result.pairs.map((p) => perCallUs(p.b))),
    addedUs: -result.medianUs,
    addedQ1Us: -result.q3Us,
    addedQ3Us: -result.q1Us,
    addedWholeRunUs: result.wholeRunUs.a - result.wholeRunUs.b,
    addedMainUs: added('mainUs'),
    addedOtherUs: added('otherUs'),
  };
}

/** The in-service target, read from the pinned, paced A/B (its median, with its quartiles beside it). */
export function auditCostTarget(row: AuditCostRow | undefined): TargetCheck {
  const check: TargetCheck = {
    target:
      `audit recording adds < ${AUDIT_ADDED_US_TARGET} µs of node CPU per call in service (recording on vs off, ` +
      'both nodes measured at the same time, paced, lean load, c=32; median of the pairs)',
    unit: 'µs',
  };
  if (row === undefined) return { ...check, why: 'not measured in this run' };
  check.measured = row.addedUs;
  check.reference =
    `quartiles ${row.addedQ1Us.toFixed(1)} to ${row.addedQ3Us.toFixed(1)} µs, whole run ` +
    `${row.addedWholeRunUs.toFixed(1)} µs, main thread ${row.addedMainUs.toFixed(1)} µs, other threads ` +
    `${row.addedOtherUs.toFixed(1)} µs; ${row.pairs} pairs of ${row.callsPerPass} calls at ${row.ratePerSec}/s each, ` +
    `${row.pinned ? 'nodes pinned to a core of their own' : 'not pinned'}, control planes on ${row.database}`;
  // Recording cannot make a call cheaper: a negative median says the passes differ by more than it costs.
  if (row.addedUs >= 0) check.met = row.addedUs < AUDIT_ADDED_US_TARGET;
  else check.why = 'recording on measured cheaper than off: the passes differ here by more than recording costs';
  return check;
}
