/**
 * `npm run bench`: issue 7's benchmark ("The benchmark", "Targets"), printed as one table; it
 * asserts nothing (timings are not tests).
 *
 *   npm run bench -- [--only 1,2,3,4,5,codec,state] [--quick] [--runs N]
 *
 * 1. CPU-bound: 1,000,000 synthetic records, no API latency; 2. the floor (floor.ts) alternating
 * with the collector on the same simulator and receiver; 3. API-bound: 150 ms a call and 2,000 calls
 * a minute; 4. memory: 250,000 and 2,000,000 records, one 40 MiB blob; 5. 20 tenants of 50,000
 * records in one collector. Every process is separate (scenarios.ts), the receiver is the real
 * Fluent Bit into `null` when there is one (receiver.ts), each figure is the median of `--runs`
 * runs (default 3; the 2,000,000-record backlog runs once), and each row names the command that
 * reproduces it. `codec` (test/bench/codec.bench.ts) and `state` (state.bench.ts) run only when
 * named. The full run takes about 25 minutes on a 2-core machine; --quick a few.
 *
 * Ctrl-C stops every process the bench started and removes its temp folders (processes.ts).
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseBenchArgs, USAGE, type BenchPlan, type Scenario } from './args.ts';
import { buildCliBundle, installCleanup, interruptedBy, repoRoot, spawnChild, tempDir } from './processes.ts';
import { startReceiver } from './receiver.ts';
import { apiBound, cpuBoundAndFloor, manyTenants, memory, type BenchContext } from './scenarios.ts';
import { renderTable, type Row } from './table.ts';

const out = (s: string) => process.stdout.write(s + '\n');
const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

let plan: BenchPlan;
try {
  plan = parseBenchArgs(process.argv.slice(2));
} catch (err) {
  const msg = (err as Error).message;
  process.stderr.write(`${msg === USAGE ? msg : `bench: ${msg}`}\n`);
  process.exit(msg === USAGE ? 0 : 2);
}
installCleanup();

/** The machine line: what the figures were measured on. */
function machine(): string[] {
  const cpus = os.cpus();
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot }).toString().trim();
    if (dirty) commit += ` + uncommitted changes in ${dirty.split('\n').length} tracked file(s)`;
  } catch {
    // not a git checkout
  }
  return [
    `machine: ${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, ${os.type()} ${os.release()}`,
    `node ${process.version}; commit ${commit}; ${new Date().toISOString()}`,
  ];
}

const started = performance.now();
const rows: Row[] = [];
const notes: string[] = [];
const header = machine();
for (const l of header) log(l);

if (plan.scenarios.size > 0) await scenarios();

/** Runs the chosen scenarios against one receiver and prints the table with how it was measured. */
async function scenarios(): Promise<void> {
  buildCliBundle();
  const rxDir = tempDir('m365-bench-rx-');
  const rx = await startReceiver(rxDir.path);
  log(`receiver: ${rx.description}`);
  const ctx: BenchContext = { plan, rx, log, note: (l) => notes.push(l) };
  const steps: [Scenario, () => Promise<Row[]>][] = [
    ['1', () => cpuBoundAndFloor(ctx)],
    ['3', () => apiBound(ctx)],
    ['4', () => memory(ctx)],
    ['5', () => manyTenants(ctx)],
  ];
  try {
    for (const [s, run] of steps) {
      if (!plan.scenarios.has(s) || interruptedBy()) continue;
      try {
        rows.push(...(await run()));
      } catch (err) {
        if (interruptedBy()) break;
        notes.push(`scenario ${s}${s === '1' ? '+2' : ''} failed: ${(err as Error).message}`);
        log(`scenario ${s} failed: ${(err as Error).message}`);
      }
    }
  } finally {
    await rx.stop();
    rxDir.remove();
  }
  if (interruptedBy()) {
    // processes.ts finishes the cleanup and exits with the signal's code.
    await new Promise(() => {});
  }
  printTable(rx.description);
}

/** The table, the machine it ran on, and how each figure is measured (stdout). */
function printTable(receiver: string): void {
  const minutes = (performance.now() - started) / 60_000;
  out('');
  out(`# m365-forward bench (issue 7)${plan.quick ? ' — QUICK: smaller sizes, not comparable with the targets' : ''}`);
  for (const l of header) out(l);
  out(`receiver: ${receiver}`);
  out(`runs: ${plan.runs} per figure (median shown, every run listed), the ${plan.sizes.memoryLarge.toLocaleString('en-US')}-record backlog ${Math.min(plan.runs, plan.sizes.memoryLargeRuns)}; took ${minutes.toFixed(1)} min`);
  out('');
  if (rows.length) out(renderTable(rows));
  out('');
  out('How it is measured:');
  out('- simulator (`src/cli.ts simulate … --write-config`, or test/bench/sim-host.ts for the 40 MiB blob and the 20 tenants), collector (the `m365-forward` bin, `src/bin.mjs run -c CFG --once`, running the bundle `npm run build` makes; the floor is bundled the same way) and receiver each run as their own process; records/s = records delivered ÷ the collector process\'s wall time from spawn to exit (its start-up included).');
  out('- CPU: a process that ends on its own (collector, floor) reports process.resourceUsage() in its exit event (test/bench/exit-usage.mjs, loaded with --import, through NODE_OPTIONS for the bin); the simulator\'s and the receiver\'s are utime+stime from /proc/<pid>/stat before and after each run. "CPU busy" = CPU seconds ÷ the run\'s wall seconds (100% = one core; this machine has ' + os.cpus().length + ').');
  out('- Peak RSS: VmHWM of the process (MB = 10^6 bytes). Targets are issue 7\'s; ✓/✗ compares the median.');
  out(`- The collector runs with the config \`simulate --write-config\` writes (defaults for everything else), from an empty state folder each run; in scenarios 1, 2, 4 and 5 its per-tenant request budget is lifted (tenants[].max_requests_per_minute: 100000), as the simulator has no quota there: with the default 1,800 a minute and ~28 records a blob it would cap the collector near 840 records/s. Scenario 3 keeps the default.`);
  out('- The floor (test/bench/floor.ts): token, listings, 8 downloads at once over keep-alive HTTPS, JSON.parse, one reused @msgpack/msgpack Encoder, PackedForward frames of 512 KiB per tag with a chunk id, at most 16 unacked; done when every ack is in.');
  for (const n of notes) out(`- ${n}`);
}

if (plan.extras.size && !interruptedBy()) {
  for (const extra of plan.extras) {
    const file = extra === 'codec' ? 'codec.bench.ts' : 'state.bench.ts';
    out('');
    out(`## ${extra} (node --import tsx test/bench/${file})`);
    await spawnChild(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, file)], { stdio: 'inherit' }).exited;
    if (interruptedBy()) await new Promise(() => {}); // processes.ts exits
  }
}
