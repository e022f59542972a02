/**
 * `npm run bench -- [--only N[,N]] [--quick] [--runs N]`: which scenarios run, at which sizes, how
 * many times. Pure: argv in, a plan out (or one line saying what is wrong).
 *
 * Sizes are issue 7's ("The benchmark"); --quick shrinks them for a smoke run of a few minutes,
 * whose figures are not comparable with the issue's targets.
 */

/** The scenarios of issue 7 ("The benchmark" 1-5), plus two optional extras run only when named. */
export const SCENARIOS = ['1', '2', '3', '4', '5'] as const;
export const EXTRAS = ['codec', 'state'] as const;
export type Scenario = (typeof SCENARIOS)[number];
export type Extra = (typeof EXTRAS)[number];

/** Sizes and repetitions of one bench run. */
export interface BenchPlan {
  /** Scenarios to run. 1 and 2 share their runs (alternating collector and floor), so either brings both. */
  scenarios: Set<Scenario>;
  extras: Set<Extra>;
  quick: boolean;
  /** Repetitions of each measured run (the median is reported); 2,000,000 records run once. */
  runs: number;
  /** The flags that reproduce this plan minus --only (for the table's commands). */
  flags: string[];
  sizes: {
    /** Scenario 1/2: synthetic records served, drained by the collector and by the floor. */
    cpuBound: number;
    /** Scenario 3: records served with latency and quota (a run lasts ~records/28/1,800 minutes). */
    apiBound: number;
    apiLatencyMs: number;
    apiQuotaPerMinute: number;
    /** Scenario 4: small and large backlog, and the one large blob (MiB of JSON). */
    memorySmall: number;
    memoryLarge: number;
    /** Runs of the large backlog (its generation and drain take minutes). */
    memoryLargeRuns: number;
    bigBlobMiB: number;
    /** Scenario 5: tenants in one collector, records each. */
    tenants: number;
    recordsPerTenant: number;
  };
}

const FULL_SIZES: BenchPlan['sizes'] = {
  cpuBound: 1_000_000,
  // ~4,300 blobs: about 2.4 min of API calls at the collector's default 1,800 a minute, so its
  // first burst (a tenth of a minute's worth) moves the rate by a few percent only.
  apiBound: 120_000,
  apiLatencyMs: 150,
  apiQuotaPerMinute: 2000,
  memorySmall: 250_000,
  memoryLarge: 2_000_000,
  memoryLargeRuns: 1,
  bigBlobMiB: 40,
  tenants: 20,
  recordsPerTenant: 50_000,
};

const QUICK_SIZES: BenchPlan['sizes'] = {
  cpuBound: 100_000,
  apiBound: 15_000,
  apiLatencyMs: 150,
  apiQuotaPerMinute: 2000,
  memorySmall: 50_000,
  memoryLarge: 200_000,
  memoryLargeRuns: 1,
  bigBlobMiB: 40,
  tenants: 20,
  recordsPerTenant: 5_000,
};

/** Parses the bench's arguments; throws an Error with one line naming the bad argument. */
export function parseBenchArgs(argv: readonly string[]): BenchPlan {
  let only: string[] | undefined;
  let quick = false;
  let runs: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined || v === '') throw new Error(`${a.split('=')[0]} needs a value`);
      return v;
    };
    if (a === '--quick') quick = true;
    else if (a === '--only' || a.startsWith('--only=')) only = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--runs' || a.startsWith('--runs=')) {
      const v = value();
      runs = Number(v);
      if (!Number.isInteger(runs) || runs < 1 || runs > 9) throw new Error(`--runs must be a whole number from 1 to 9, got '${v}'`);
    } else if (a === '--help' || a === '-h') throw new Error(USAGE);
    else throw new Error(`unknown argument '${a}' (${USAGE})`);
  }
  const known = new Set<string>([...SCENARIOS, ...EXTRAS]);
  for (const o of only ?? []) {
    if (!known.has(o)) throw new Error(`--only ${o}: not a scenario (one of ${[...SCENARIOS, ...EXTRAS].join(', ')})`);
  }
  const chosen = only ?? [...SCENARIOS];
  const scenarios = new Set(chosen.filter((s): s is Scenario => (SCENARIOS as readonly string[]).includes(s)));
  // Scenario 2's ratios need scenario 1's collector runs, and 1's MB/s the bytes the floor counted.
  if (scenarios.has('1') || scenarios.has('2')) scenarios.add('1').add('2');
  // Without --only: the five scenarios and the state figures (~20 s); the codec bench only when named.
  const extras = only ? new Set(chosen.filter((s): s is Extra => (EXTRAS as readonly string[]).includes(s))) : new Set<Extra>(['state']);
  const flags = [...(quick ? ['--quick'] : []), ...(runs !== undefined ? [`--runs ${runs}`] : [])];
  return { scenarios, extras, quick, runs: runs ?? (quick ? 1 : 3), flags, sizes: quick ? QUICK_SIZES : FULL_SIZES };
}

export const USAGE = 'usage: npm run bench -- [--only 1,2,3,4,5,codec,state] [--quick] [--runs N]';

/** The command that reproduces a row of scenario `s` with the plan's flags. */
export function reproduce(plan: BenchPlan, s: Scenario): string {
  return ['npm run bench --', `--only ${s}`, ...plan.flags].join(' ');
}
