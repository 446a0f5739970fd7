/** Command-line options and the request counts of a run (`--quick` cuts them for a shorter run). */

import type { DatabaseKind } from './scenarios/databases.ts';
import type { PropagationFleet } from './scenarios/propagation.ts';

export interface Profile {
  quick: boolean;
  /** Measured calls per row, by driver and concurrency. */
  calls: { lean: { c1: number; c32: number }; sdk: { c1: number; c32: number } };
  /**
   * Warm-up calls before each row, not counted; tool-call rows go on warming up for at least `minWarmupMs` (in rounds
   * of that many calls).
   */
  warmup: { c1: number; c32: number };
  /**
   * A freshly started process is not yet in its steady state: a data-plane node's CPU per call at
   * c=32 fell from 0.074 to 0.048 ms over its first 50,000 calls here (JIT tiers, heap sizing), and
   * its upstream and the load generator warm up too. Each tool-call row, whatever its target,
   * therefore warms up for this long before it is measured; the time-based rule treats fast and
   * slow targets alike.
   */
  minWarmupMs: { c1: number; c32: number };
  concurrencies: readonly number[];
  /** Unmeasured lean c=32 load on each gateway target after the gateway starts, before its first row. */
  gatewayWarmupMs: number;
  /** Streamable HTTP rows (direct, floor proxy, gateway) are measured in this many passes taken in turns. */
  passes: number;
  /** tools/list requests per row (c=1 only). */
  listCalls: { lean: number; sdk: number };
  /** Virtual keys to have configured during the tools/list rows, and the time allowed for creating them. */
  seedKeys: number;
  seedBudgetMs: number;
  /** The measured phase of a row stops after this long even if its calls are not all made (marked truncated). */
  maxMeasureMs: number;
  /** Likewise for a row's warm-up. */
  maxWarmupMs: number;
  /** A row that has not finished after this long fails (a hung target). */
  rowTimeoutMs: number;
  /**
   * Config propagation: databases, fleets measured (nodes and the processes they run in), revocations per fleet, keys
   * configured.
   */
  propagationDatabases: readonly DatabaseKind[];
  propagationFleets: readonly PropagationFleet[];
  propagationRounds: number;
  propagationKeys: number;
  /** Snapshot build and apply: databases, key counts, repetitions of whole builds and of per-change ones. */
  snapshotDatabases: readonly DatabaseKind[];
  snapshotKeys: readonly number[];
  snapshotWholeReps: number;
  snapshotChangeReps: number;
  /** Audit ingest end to end: records in the node's spool, shipped to rows in PostgreSQL. */
  auditIngestRecords: number;
  /** The record step in one process, on vs off: calls per round and rounds (alternating). */
  auditRecordCalls: number;
  auditRecordRounds: number;
  /** Recording's cost in service (audit-cost): pairs of passes, calls a pass, and the pace of both sides. */
  auditCostPairs: number;
  auditCostCalls: number;
  auditCostRate: number;
}

/** The parts of a run, in the order they run. */
export const SECTIONS = [
  'calls',
  'tools-list',
  'propagation',
  'snapshots',
  'audit-record',
  'audit-ingest',
  'audit-cost',
  'code-mode',
] as const;
export type Section = (typeof SECTIONS)[number];

/**
 * The current gateway started otherwise, measured beside it on the stdio rows: `audit-off` (a node
 * started with `--audit off`) and `limits-on` (the key with a rate limit and a budget, the tools priced).
 * Both are measured unless `--variants` says otherwise (`--variants none`: neither): what recording
 * costs on the hot path (issue 14) and what the key check with limits and a budget costs (issue 15) are
 * figures of every run.
 */
export const VARIANTS = ['audit-off', 'limits-on'] as const;
export type Variant = (typeof VARIANTS)[number];
export const DEFAULT_VARIANTS: readonly Variant[] = ['audit-off', 'limits-on'];

export interface Options {
  profile: Profile;
  /** `--baseline <ref>`: that commit's gateway measured beside the current one on the stdio rows. */
  baseline?: string | undefined;
  variants: ReadonlySet<Variant>;
  /** Skip the Portcullis rows (e.g. while the gateway does not start). */
  skipGateway: boolean;
  outFile: string | undefined;
  /** The sections to run (all by default). */
  sections: ReadonlySet<Section>;
  /** The real PostgreSQL for the database-backed rows (a schema is created per run and dropped). */
  postgresUrl: string;
}

// Counts sized so that on an idle 2-core machine almost every row makes all its calls; the time caps
// keep a run bounded on a slow or busy one.
const FULL: Profile = {
  quick: false,
  calls: { lean: { c1: 3_000, c32: 16_000 }, sdk: { c1: 1_500, c32: 6_000 } },
  warmup: { c1: 200, c32: 1_000 },
  minWarmupMs: { c1: 1_000, c32: 3_000 },
  concurrencies: [1, 32],
  gatewayWarmupMs: 4_000,
  passes: 2,
  listCalls: { lean: 1_000, sdk: 400 },
  seedKeys: 10_000,
  seedBudgetMs: 40_000,
  maxMeasureMs: 8_000,
  maxWarmupMs: 4_000,
  rowTimeoutMs: 60_000,
  propagationDatabases: ['embedded', 'postgres'],
  // 16 nodes twice: each its own process, and four to a process (16 processes on 2 cores mostly measure the scheduler).
  propagationFleets: [
    { nodes: 1, processes: 1 },
    { nodes: 4, processes: 4 },
    { nodes: 16, processes: 16 },
    { nodes: 16, processes: 4 },
  ],
  // Enough rounds that p99 is not simply the slowest one.
  propagationRounds: 100,
  propagationKeys: 10_000,
  snapshotDatabases: ['embedded', 'postgres'],
  snapshotKeys: [1_000, 10_000, 100_000],
  snapshotWholeReps: 3,
  snapshotChangeReps: 10,
  auditIngestRecords: 100_000,
  auditRecordCalls: 20_000,
  auditRecordRounds: 10,
  // 10 pairs of 4 s passes: about two minutes and a half with the starts; quartiles within ±2 µs on a quiet machine.
  auditCostPairs: 12,
  auditCostCalls: 12_000,
  auditCostRate: 3_000,
};

const QUICK: Profile = {
  quick: true,
  calls: { lean: { c1: 500, c32: 2_000 }, sdk: { c1: 300, c32: 800 } },
  warmup: { c1: 50, c32: 200 },
  minWarmupMs: { c1: 0, c32: 0 },
  concurrencies: [1, 32],
  gatewayWarmupMs: 0,
  passes: 1,
  listCalls: { lean: 150, sdk: 60 },
  seedKeys: 0,
  seedBudgetMs: 0,
  maxMeasureMs: 1_000,
  maxWarmupMs: 300,
  rowTimeoutMs: 20_000,
  propagationDatabases: ['embedded'],
  propagationFleets: [
    { nodes: 1, processes: 1 },
    { nodes: 4, processes: 4 },
  ],
  propagationRounds: 5,
  propagationKeys: 1_000,
  snapshotDatabases: ['embedded'],
  snapshotKeys: [1_000, 10_000],
  snapshotWholeReps: 1,
  snapshotChangeReps: 3,
  auditIngestRecords: 20_000,
  auditRecordCalls: 5_000,
  auditRecordRounds: 4,
  auditCostPairs: 4,
  auditCostCalls: 3_000,
  auditCostRate: 3_000,
};

const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

export const USAGE = `Usage: npm run bench [-- options]
  --quick          fewer calls per row and rounds per section (about 3 minutes)
  --no-gateway     measure only the direct path and the peer proxies
  --keys <n>       virtual keys to configure for the tools/list rows (default 10,000 within 40 s; 0 with --quick)
  --out <file>     where to write the JSON results (default bench/results/latest.json)
  --baseline <git-ref>
                   also measure that commit's gateway (in a temporary worktree, this checkout's node_modules)
                   in the same turns on the stdio rows, as "portcullis@<short-sha>", with a current/baseline row
  --variants <list>
                   also measure the current gateway started otherwise, comma-separated: ${VARIANTS.join(', ')}
                   (audit-off: a node with --audit off; limits-on: a rate limit and a budget on the key),
                   with the difference in node CPU per call (default: ${DEFAULT_VARIANTS.join(',')}; none: neither)
  --only <list>    run only these sections, comma-separated: ${SECTIONS.join(', ')}
  --database-url <url>
                   the real PostgreSQL for the propagation, snapshot and audit ingest rows (default: DATABASE_URL,
                   else ${DEFAULT_POSTGRES_URL}); a schema is created for the run and dropped
  --help           this text`;

export function parseOptions(argv: readonly string[]): Options | 'help' {
  let quick = false;
  let skipGateway = false;
  let outFile: string | undefined;
  let keys: number | undefined;
  let sections: Set<Section> = new Set(SECTIONS);
  let postgresUrl = process.env['DATABASE_URL'] || DEFAULT_POSTGRES_URL;
  let baseline: string | undefined;
  let variants: Set<Variant> | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') quick = true;
    else if (arg === '--only') {
      const wanted = (argv[++i] ?? '').split(',').filter((name) => name !== '');
      const unknown = wanted.filter((name) => !(SECTIONS as readonly string[]).includes(name));
      if (wanted.length === 0 || unknown.length > 0)
        throw new Error(
          `--only takes a comma-separated list of ` +
            `${SECTIONS.join(', ')}${unknown.length ? `, not ${unknown.join(', ')}` : ''}\n${USAGE}`,
        );
      sections = new Set(wanted as Section[]);
    } else if (arg === '--database-url') {
      postgresUrl = argv[++i] ?? '';
      if (!/^postgres(ql)?:\/\//.test(postgresUrl)) throw new Error(`--database-url needs a postgres:// URL\n${USAGE}`);
    } else if (arg === '--baseline') {
      baseline = argv[++i] ?? '';
      if (baseline === '' || baseline.startsWith('-')) throw new Error(`--baseline needs a git ref\n${USAGE}`);
    } else if (arg === '--variants' && argv[i + 1] === 'none') {
      i++;
      variants = new Set();
    } else if (arg === '--variants') {
      const wanted = (argv[++i] ?? '').split(',').filter((name) => name !== '');
      const unknown = wanted.filter((name) => !(VARIANTS as readonly string[]).includes(name));
      if (wanted.length === 0 || unknown.length > 0)
        throw new Error(
          `--variants takes a comma-separated list of ${VARIANTS.join(', ')}` +
            `${unknown.length ? `, not ${unknown.join(', ')}` : ''}\n${USAGE}`,
        );
      variants = new Set(wanted as Variant[]);
    } else if (arg === '--no-gateway') skipGateway = true;
    else if (arg === '--out') outFile = argv[++i];
    else if (arg === '--keys') {
      keys = Number(argv[++i]);
      if (!Number.isInteger(keys) || keys < 0) throw new Error(`--keys needs a whole number\n${USAGE}`);
    } else if (arg === '--help' || arg === '-h') return 'help';
    else throw new Error(`unknown option ${arg}\n${USAGE}`);
  }
  const profile = { ...(quick ? QUICK : FULL) };
  // An explicit key count is created in full, however long that takes (up to 10 minutes).
  if (keys !== undefined) Object.assign(profile, { seedKeys: keys, seedBudgetMs: 600_000 });
  if ((baseline !== undefined || (variants !== undefined && variants.size > 0)) && skipGateway)
    throw new Error(`--baseline and --variants measure gateways: not with --no-gateway\n${USAGE}`);
  variants ??= new Set(skipGateway ? [] : DEFAULT_VARIANTS);
  return { profile, skipGateway, outFile, sections, postgresUrl, baseline, variants };
}

export function callsFor(
  profile: Profile,
  driver: 'lean' | 'sdk',
  concurrency: number,
  method: 'tools/call' | 'tools/list',
): { calls: number; warmup: number; minWarmupMs: number } {
  const c1 = concurrency === 1;
  const warmup = profile.warmup[c1 ? 'c1' : 'c32'];
  if (method === 'tools/list')
    return {
      calls: profile.listCalls[driver],
      warmup: Math.min(warmup, Math.ceil(profile.listCalls[driver] / 5)),
      minWarmupMs: 0,
    };
  return {
    calls: profile.calls[driver][c1 ? 'c1' : 'c32'],
    warmup,
    minWarmupMs: profile.minWarmupMs[c1 ? 'c1' : 'c32'],
  };
}
