/** Command-line options and the request counts of a run (`--quick` cuts them for a run under a minute). */

export interface Profile {
  quick: boolean;
  /** Measured calls per row, by driver and concurrency. */
  calls: { lean: { c1: number; c32: number }; sdk: { c1: number; c32: number } };
  /** Warm-up calls before each row, not counted. */
  warmup: { c1: number; c32: number };
  concurrencies: readonly number[];
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
  /** Config propagation: node counts measured, and revocations per count. */
  propagationNodes: readonly number[];
  propagationRounds: number;
}

export interface Options {
  profile: Profile;
  /** Skip the Portcullis rows (e.g. while the gateway does not start). */
  skipGateway: boolean;
  outFile: string | undefined;
}

// Counts sized so that on an idle 2-core machine almost every row makes all its calls; the time caps
// keep a run bounded on a slow or busy one.
const FULL: Profile = {
  quick: false,
  calls: { lean: { c1: 3_000, c32: 16_000 }, sdk: { c1: 1_500, c32: 6_000 } },
  warmup: { c1: 200, c32: 1_000 },
  concurrencies: [1, 32],
  listCalls: { lean: 1_000, sdk: 400 },
  seedKeys: 10_000,
  seedBudgetMs: 40_000,
  maxMeasureMs: 8_000,
  maxWarmupMs: 2_000,
  rowTimeoutMs: 60_000,
  propagationNodes: [1, 4, 16],
  propagationRounds: 20,
};

const QUICK: Profile = {
  quick: true,
  calls: { lean: { c1: 500, c32: 2_000 }, sdk: { c1: 300, c32: 800 } },
  warmup: { c1: 50, c32: 200 },
  concurrencies: [1, 32],
  listCalls: { lean: 150, sdk: 60 },
  seedKeys: 0,
  seedBudgetMs: 0,
  maxMeasureMs: 1_000,
  maxWarmupMs: 300,
  rowTimeoutMs: 20_000,
  propagationNodes: [1, 4],
  propagationRounds: 5,
};

export const USAGE = `Usage: npm run bench [-- options]
  --quick          fewer calls per row (under a minute)
  --no-gateway     measure only the direct path and the peer proxies
  --keys <n>       virtual keys to configure for the tools/list rows (default 10,000 within 40 s; 0 with --quick)
  --out <file>     where to write the JSON results (default bench/results/latest.json)
  --help           this text`;

export function parseOptions(argv: readonly string[]): Options | 'help' {
  let quick = false;
  let skipGateway = false;
  let outFile: string | undefined;
  let keys: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') quick = true;
    else if (arg === '--no-gateway') skipGateway = true;
    else if (arg === '--out') outFile = argv[++i];
    else if (arg === '--keys') {
      keys = Number(argv[++i]);
      if (!Number.isInteger(keys) || keys < 0) throw new Error(`--keys needs a whole number\n${USAGE}`);
    }
    else if (arg === '--help' || arg === '-h') return 'help';
    else throw new Error(`unknown option ${arg}\n${USAGE}`);
  }
  const profile = { ...(quick ? QUICK : FULL) };
  // An explicit key count is created in full, however long that takes (up to 10 minutes).
  if (keys !== undefined) Object.assign(profile, { seedKeys: keys, seedBudgetMs: 600_000 });
  return { profile, skipGateway, outFile };
}

export function callsFor(profile: Profile, driver: 'lean' | 'sdk', concurrency: number, method: 'tools/call' | 'tools/list'): { calls: number; warmup: number } {
  const c1 = concurrency === 1;
  const warmup = profile.warmup[c1 ? 'c1' : 'c32'];
  if (method === 'tools/list') return { calls: profile.listCalls[driver], warmup: Math.min(warmup, Math.ceil(profile.listCalls[driver] / 5)) };
  return { calls: profile.calls[driver][c1 ? 'c1' : 'c32'], warmup };
}
