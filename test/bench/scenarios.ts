/**
 * Issue 7's benchmark scenarios ("The benchmark" 1-5), each run with separate processes as an
 * operator would run them: the simulator (`src/cli.ts simulate … --write-config`, or
 * sim-host.ts where `simulate` cannot stage it), the collector (the bin, `src/bin.mjs run -c CFG --once`, on its bundle),
 * the receiver (receiver.ts), and for scenario 2 the floor (floor.ts). Each returns table rows
 * (the median over its runs) and notes on what it saw.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { reproduce, type BenchPlan } from './args.ts';
import { assertBundleCurrent, binPath, bundleProgram, cliPath, cpuSecondsOf, interruptedBy, measureNode, peakRssMbOf, startReadyChild, statsLine, tempDir, type Child } from './processes.ts';
import { settle, type BenchReceiver } from './receiver.ts';
import { busy, fmt, median, type Row } from './table.ts';

/** What every scenario gets. */
export interface BenchContext {
  plan: BenchPlan;
  rx: BenchReceiver;
  /** Progress lines (stderr), so a long run shows it is alive. */
  log(line: string): void;
  /** Findings printed under the table. */
  note(line: string): void;
}

/**
 * The collector's own request budget (tenants[].max_requests_per_minute, default 1,800: the real
 * API's quota) is lifted to its maximum in the CPU-bound scenarios: with blobs of ~28 records it
 * would otherwise cap the collector at ~840 records/s and the bench would measure the budget, not
 * the record path. Scenario 3 keeps the default against the simulator's quota.
 */
const LIFTED_BUDGET = 100_000;

/** What one measured drain spent: its own wall time, CPU and memory, and the simulator's and receiver's CPU meanwhile. */
interface DrainFigures {
  records: number;
  blobs: number;
  wallSeconds: number;
  cpuSeconds: number;
  peakRssMb: number;
  simCpuSeconds: number;
  rxCpuSeconds: number;
  /** Records the receiver counted during the run (delivered records + status records). */
  rxRecords: number | undefined;
  problem?: string;
}

/** One measured `run --once` of the collector, with what the simulator and receiver spent meanwhile. */
export interface CollectorRun extends DrainFigures {
  code: number | null;
  timedOut: boolean;
  /** The collector's last stderr lines when it did not exit 0. */
  problem?: string;
}

const DELIVERED = /delivered (\d+) records in (\d+) blobs/;
const PARTIAL = /(\d+) records in (\d+) blobs acknowledged/;

/** Writes a collector config (0600: it holds the simulator's throwaway secrets). */
function writeConfig(file: string, tree: Record<string, unknown>): void {
  writeFileSync(file, stringify(tree), { mode: 0o600 });
}

/** The `simulate --write-config` file, pointed at the receiver, with a state folder of its own. */
function configFromSimulate(simConfig: string, out: string, opts: { port: number; stateDir: string; liftBudget: boolean }): void {
  const tree = parse(readFileSync(simConfig, 'utf8')) as Record<string, any>;
  tree.output.forward.port = opts.port;
  tree.state.path = path.join(opts.stateDir, 'state.json');
  if (opts.liftBudget) for (const t of tree.tenants) t.max_requests_per_minute = LIFTED_BUDGET;
  writeConfig(out, tree);
}

/** The config of a sim-host line: one tenant per simulator, their CAs in one file. */
function configFromHost(host: Record<string, any>, out: string, opts: { port: number; stateDir: string; lookbackHours: number }): void {
  const tenants = (host.tenants as Record<string, string>[]).map((t, i) => ({
    name: `tenant${String(i + 1).padStart(2, '0')}`,
    tenant_id: t.tenantId,
    client_id: t.clientId,
    client_secret: t.clientSecret,
    api_url: t.apiUrl,
    login_url: t.loginUrl,
    max_requests_per_minute: LIFTED_BUDGET,
  }));
  writeConfig(out, {
    tenants,
    api: { ca_file: host.caFile },
    output: { type: 'forward', record_format: 'record', forward: { host: '127.0.0.1', port: opts.port } },
    state: { path: path.join(opts.stateDir, 'state.json') },
    polling: { interval: '60s', initial_lookback: `${opts.lookbackHours}h`, overlap: '2h' },
  });
}

/** Starts `simulate` (own process) writing its config into `dir`; resolves with its ready line. */
async function startSimulate(dir: string, args: string[]): Promise<{ child: Child; ready: Record<string, any>; configFile: string }> {
  const configFile = path.join(dir, 'sim.yaml');
  const { child, ready } = await startReadyChild(['--import', 'tsx', cliPath, 'simulate', ...args, '--write-config', configFile], 'simulate', 15 * 60_000);
  return { child, ready, configFile };
}

/** Starts sim-host.ts (own process); resolves with its ready line. */
function startHost(dir: string, args: string[]) {
  return startReadyChild(['--import', 'tsx', path.join(import.meta.dirname, 'sim-host.ts'), dir, ...args], 'sim-host', 15 * 60_000);
}

/** A run's deadline: generous against any plausible speed, so a stuck run cannot hold the bench. */
function deadlineSeconds(records: number, floorSeconds = 120): number {
  return Math.max(floorSeconds, Math.ceil(records / 1000));
}

/**
 * One `run -c CFG --once` from an empty state folder, measured; the simulator's and receiver's CPU
 * are read around it, and the receiver's count once it has settled.
 */
export async function runCollector(ctx: BenchContext, o: { config: string; stateDir: string; simPid: number; expected: number; usageDir: string; timeoutSeconds?: number }): Promise<CollectorRun> {
  rmSync(o.stateDir, { recursive: true, force: true });
  mkdirSync(o.stateDir, { recursive: true });
  const timeout = o.timeoutSeconds ?? deadlineSeconds(o.expected);
  const [sim0, rx0, rxRecords0] = [cpuSecondsOf(o.simPid) ?? NaN, cpuSecondsOf(ctx.rx.pid) ?? NaN, await ctx.rx.records()];
  assertBundleCurrent();
  const m = await measureNode(binPath, ['run', '-c', o.config, '--once', '--timeout', `${timeout}s`], { usageFile: path.join(o.usageDir, 'usage.json'), timeoutMs: (timeout + 60) * 1000 });
  assertBundleCurrent();
  const done = DELIVERED.exec(m.stderr) ?? PARTIAL.exec(m.stderr);
  const records = done ? Number(done[1]) : 0;
  const rxRecords = rxRecords0 === undefined ? undefined : await settle(ctx.rx, rxRecords0 + records);
  const [sim1, rx1] = [cpuSecondsOf(o.simPid) ?? NaN, cpuSecondsOf(ctx.rx.pid) ?? NaN];
  const run: CollectorRun = {
    records,
    blobs: done ? Number(done[2]) : 0,
    wallSeconds: m.wallSeconds,
    cpuSeconds: m.cpuSeconds,
    peakRssMb: m.peakRssMb,
    simCpuSeconds: sim1 - sim0,
    rxCpuSeconds: rx1 - rx0,
    rxRecords: rxRecords === undefined || rxRecords0 === undefined ? undefined : rxRecords - rxRecords0,
    code: m.code,
    timedOut: m.timedOut,
  };
  if (m.code !== 0) run.problem = m.stderr.trim().split('\n').filter((l) => !l.startsWith('{')).slice(-3).join(' | ') || `exit ${m.code ?? m.signal}`;
  ctx.log(
    `  collector: ${records.toLocaleString('en-US')} records in ${m.wallSeconds.toFixed(1)} s (${fmt(records / m.wallSeconds)} records/s), CPU ${m.cpuSeconds.toFixed(1)} s, peak RSS ${m.peakRssMb.toFixed(0)} MB, ` +
      `simulator CPU ${run.simCpuSeconds.toFixed(1)} s, receiver CPU ${run.rxCpuSeconds.toFixed(1)} s, receiver counted ${run.rxRecords ?? '?'}${run.problem ? `; exit ${m.code}: ${run.problem}` : ''}`,
  );
  return run;
}

/** Notes every run that did not end well, or whose records did not all reach the receiver. */
function checkRuns(ctx: BenchContext, scenario: string, runs: readonly CollectorRun[], expected: number): void {
  runs.forEach((r, i) => {
    const which = `scenario ${scenario}, run ${i + 1}`;
    if (r.code !== 0) ctx.note(`${which}: the collector exited ${r.code}${r.timedOut ? ' (killed at the bench deadline)' : ''}: ${r.problem}`);
    else if (r.records !== expected) ctx.note(`${which}: the collector delivered ${r.records} of ${expected} records served`);
    if (r.rxRecords !== undefined && r.rxRecords < r.records) ctx.note(`${which}: the receiver counted ${r.rxRecords} records, fewer than the ${r.records} the collector reports delivered`);
  });
}

const per100k = (cpu: number, records: number) => (records > 0 ? (cpu / records) * 100_000 : NaN);
const busyOf = (runs: readonly { wallSeconds: number; cpuSeconds: number; simCpuSeconds: number; rxCpuSeconds: number }[], first = 'coll', rxName = 'rx') =>
  busy({
    [first]: median(runs.map((r) => r.cpuSeconds / r.wallSeconds)),
    sim: median(runs.map((r) => r.simCpuSeconds / r.wallSeconds)),
    [rxName]: median(runs.map((r) => r.rxCpuSeconds / r.wallSeconds)),
  });

// ---------------------------------------------------------------------------------------------

/** One floor run (floor.ts), measured like the collector. */
interface FloorRun extends DrainFigures {
  bytes: number;
  frames: number;
}

async function runFloor(ctx: BenchContext, o: { floorScript: string; endpointFile: string; lookbackHours: number; simPid: number; usageDir: string; expected: number }): Promise<FloorRun> {
  const [sim0, rx0, rxRecords0] = [cpuSecondsOf(o.simPid) ?? NaN, cpuSecondsOf(ctx.rx.pid) ?? NaN, await ctx.rx.records()];
  const m = await measureNode(o.floorScript, [o.endpointFile, String(ctx.rx.port), String(o.lookbackHours)], {
    usageFile: path.join(o.usageDir, 'floor-usage.json'),
    timeoutMs: deadlineSeconds(o.expected) * 1000,
  });
  const line = m.stdout.split('\n').find((l) => l.startsWith('{'));
  const out = line ? (JSON.parse(line) as { records: number; blobs: number; bytes: number; frames: number }) : { records: 0, blobs: 0, bytes: 0, frames: 0 };
  const rxRecords = rxRecords0 === undefined ? undefined : await settle(ctx.rx, rxRecords0 + out.records);
  const [sim1, rx1] = [cpuSecondsOf(o.simPid) ?? NaN, cpuSecondsOf(ctx.rx.pid) ?? NaN];
  const run: FloorRun = {
    ...out,
    wallSeconds: m.wallSeconds,
    cpuSeconds: m.cpuSeconds,
    peakRssMb: m.peakRssMb,
    simCpuSeconds: sim1 - sim0,
    rxCpuSeconds: rx1 - rx0,
    rxRecords: rxRecords === undefined || rxRecords0 === undefined ? undefined : rxRecords - rxRecords0,
  };
  if (m.code !== 0) run.problem = m.stderr.trim().split('\n').slice(-3).join(' | ') || `exit ${m.code ?? m.signal}`;
  ctx.log(
    `  floor:     ${out.records.toLocaleString('en-US')} records in ${m.wallSeconds.toFixed(1)} s (${fmt(out.records / m.wallSeconds)} records/s), CPU ${m.cpuSeconds.toFixed(1)} s, peak RSS ${m.peakRssMb.toFixed(0)} MB, ` +
      `simulator CPU ${run.simCpuSeconds.toFixed(1)} s, receiver CPU ${run.rxCpuSeconds.toFixed(1)} s, receiver counted ${run.rxRecords ?? '?'}${run.problem ? `; FAILED: ${run.problem}` : ''}`,
  );
  return run;
}

/**
 * Scenarios 1 and 2 together: one simulator serving `cpuBound` synthetic records; the collector
 * and the floor drain it in turn (collector first), `runs` times each, from empty state.
 */
export async function cpuBoundAndFloor(ctx: BenchContext): Promise<Row[]> {
  const { plan } = ctx;
  const n = plan.sizes.cpuBound;
  const dir = tempDir('m365-bench-1-');
  try {
    ctx.log(`scenarios 1+2: simulator generating ${n.toLocaleString('en-US')} synthetic records …`);
    const sim = await startSimulate(dir.path, ['--records', String(n), '--seed', '42']);
    try {
      const config = path.join(dir.path, 'collector.yaml');
      const stateDir = path.join(dir.path, 'state');
      configFromSimulate(sim.configFile, config, { port: ctx.rx.port, stateDir, liftBudget: true });
      const endpointFile = path.join(dir.path, 'endpoint.json');
      writeFileSync(endpointFile, JSON.stringify(sim.ready), { mode: 0o600 });
      const lookbackHours = Number(/initial_lookback: (\d+)h/.exec(readFileSync(sim.configFile, 'utf8'))?.[1] ?? 21);
      // Bundled like the collector (src/build.mjs), so neither pays tsx's transpile at start.
      const floorScript = await bundleProgram(path.join(import.meta.dirname, 'floor.ts'), dir.path);
      const coll: CollectorRun[] = [];
      const floor: FloorRun[] = [];
      for (let i = 0; i < plan.runs && !interruptedBy(); i++) {
        ctx.log(` run ${i + 1}/${plan.runs}`);
        coll.push(await runCollector(ctx, { config, stateDir, simPid: sim.child.pid, expected: n, usageDir: dir.path }));
        if (interruptedBy()) break;
        floor.push(await runFloor(ctx, { floorScript, endpointFile, lookbackHours, simPid: sim.child.pid, usageDir: dir.path, expected: n }));
      }
      checkRuns(ctx, '1', coll, n);
      floor.forEach((f, i) => {
        if (f.problem) ctx.note(`scenario 2, floor run ${i + 1} failed: ${f.problem}`);
        else if (f.records !== n) ctx.note(`scenario 2, floor run ${i + 1}: ${f.records} of ${n} records`);
        if (f.rxRecords !== undefined && f.rxRecords !== f.records) ctx.note(`scenario 2, floor run ${i + 1}: the receiver counted ${f.rxRecords} records of the floor's ${f.records}`);
      });
      const bytes = median(floor.map((f) => f.bytes));
      if (Number.isFinite(bytes)) {
        ctx.note(`records: the simulator's synthetic tenant, ${n.toLocaleString('en-US')} records in ${sim.ready.blobs.toLocaleString('en-US')} blobs (${(n / sim.ready.blobs).toFixed(1)} records a blob, 1-80), ${(bytes / 1e6).toFixed(0)} MB of blob JSON: ${(bytes / n).toFixed(0)} bytes a record on average (issue 7 asks for about 1-2 KB)`);
      }
      const cmd1 = reproduce(plan, '1');
      const cmd2 = reproduce(plan, '2');
      const recPerS = coll.map((r) => r.records / r.wallSeconds);
      const collCpu = coll.map((r) => per100k(r.cpuSeconds, r.records));
      const simCpu = coll.map((r) => per100k(r.simCpuSeconds, r.records));
      const pairs = coll.map((c, i) => [c, floor[i]] as const).filter((p): p is readonly [CollectorRun, FloorRun] => p[1] !== undefined && !p[1].problem && p[0].code === 0);
      const speedRatio = pairs.map(([c, f]) => c.records / c.wallSeconds / (f.records / f.wallSeconds));
      const cpuRatio = pairs.map(([c, f]) => per100k(c.cpuSeconds, c.records) / per100k(f.cpuSeconds, f.records));
      const busyColl = busyOf(coll, 'coll', ctx.rx.kind === 'fluent-bit' ? 'fb' : 'rx');
      const busyFloor = busyOf(floor, 'floor', ctx.rx.kind === 'fluent-bit' ? 'fb' : 'rx');
      const k = (x: number) => x.toLocaleString('en-US');
      return [
        { scenario: '1', figure: `collector records/s (${k(n)} records, acks on)`, values: recPerS, unit: '', target: '≥ 25,000', met: median(recPerS) >= 25_000, busy: busyColl, command: cmd1 },
        { scenario: '1', figure: 'collector MB/s of blob JSON', values: coll.map((r) => (bytes * (r.records / n)) / r.wallSeconds / 1e6), unit: 'MB/s', digits: 1, busy: busyColl, command: cmd1 },
        { scenario: '1', figure: 'collector CPU per 100k records', values: collCpu, unit: 's', busy: busyColl, command: cmd1 },
        {
          scenario: '1',
          figure: 'simulator CPU per 100k records (serving the collector)',
          values: simCpu,
          unit: 's',
          target: '< 1/5 of the collector',
          met: median(simCpu) < median(collCpu) / 5,
          busy: busyColl,
          command: cmd1,
        },
        { scenario: '1', figure: `${ctx.rx.kind === 'fluent-bit' ? 'Fluent Bit' : 'receiver'} CPU per 100k records`, values: coll.map((r) => per100k(r.rxCpuSeconds, r.records)), unit: 's', busy: busyColl, command: cmd1 },
        { scenario: '1', figure: 'collector peak RSS', values: coll.map((r) => r.peakRssMb), unit: 'MB', target: '≤ 200 MB', met: median(coll.map((r) => r.peakRssMb)) <= 200, busy: busyColl, command: cmd1 },
        { scenario: '2', figure: 'floor records/s (same blobs, same receiver)', values: floor.map((f) => f.records / f.wallSeconds), unit: '', busy: busyFloor, command: cmd2 },
        { scenario: '2', figure: 'floor CPU per 100k records', values: floor.map((f) => per100k(f.cpuSeconds, f.records)), unit: 's', busy: busyFloor, command: cmd2 },
        { scenario: '2', figure: 'floor peak RSS', values: floor.map((f) => f.peakRssMb), unit: 'MB', busy: busyFloor, command: cmd2 },
        { scenario: '2', figure: 'collector ÷ floor, records/s (per pair)', values: speedRatio, unit: '×', target: '≥ 0.8', met: median(speedRatio) >= 0.8, command: cmd2 },
        { scenario: '2', figure: 'collector ÷ floor, CPU per record (per pair)', values: cpuRatio, unit: '×', target: '≤ 1.25', met: median(cpuRatio) <= 1.25, command: cmd2 },
      ];
    } finally {
      await sim.child.stop();
    }
  } finally {
    dir.remove();
  }
}

/**
 * Scenario 3: every API call answered after `apiLatencyMs`, `apiQuotaPerMinute` calls a minute per
 * publisher (403 AF429 beyond). The collector runs with its defaults (budget and concurrency as an
 * operator gets them). A fresh simulator per run, so its exit stats are that run's.
 */
export async function apiBound(ctx: BenchContext): Promise<Row[]> {
  const { plan } = ctx;
  const n = plan.sizes.apiBound;
  const { apiLatencyMs: latency, apiQuotaPerMinute: quota } = plan.sizes;
  const runs: (CollectorRun & { apiCalls: number; perMinute: number; throttled: number })[] = [];
  for (let i = 0; i < plan.runs && !interruptedBy(); i++) {
    const dir = tempDir('m365-bench-3-');
    try {
      ctx.log(`scenario 3, run ${i + 1}/${plan.runs}: ${n.toLocaleString('en-US')} records, ${latency} ms a call, ${quota} calls a minute`);
      const sim = await startSimulate(dir.path, ['--records', String(n), '--seed', String(300 + i), '--latency-ms', String(latency), '--requests-per-minute', String(quota)]);
      let run: CollectorRun;
      try {
        const config = path.join(dir.path, 'collector.yaml');
        const stateDir = path.join(dir.path, 'state');
        configFromSimulate(sim.configFile, config, { port: ctx.rx.port, stateDir, liftBudget: false });
        // ~28 records a blob, one call each, at most the quota a minute: the deadline follows.
        run = await runCollector(ctx, { config, stateDir, simPid: sim.child.pid, expected: n, usageDir: dir.path, timeoutSeconds: Math.max(300, Math.ceil((n / 28 / quota) * 60 * 4)) });
      } finally {
        await sim.child.stop();
      }
      const stats = statsLine(sim.child.stdout());
      if (!stats) {
        ctx.note(`scenario 3, run ${i + 1}: the simulator printed no stats at exit`);
        runs.push({ ...run, apiCalls: NaN, perMinute: NaN, throttled: NaN });
        continue;
      }
      const by = stats.byRoute as Record<string, number>;
      const apiCalls = ['start', 'stop', 'list', 'content', 'blob'].reduce((s, r) => s + (by[r] ?? 0), 0);
      const spanMs = (stats.lastApiRequestMs as number) - (stats.firstApiRequestMs as number);
      const perMinute = spanMs > 0 ? ((apiCalls - 1) / spanMs) * 60_000 : NaN;
      ctx.log(`  API: ${apiCalls} calls over ${(spanMs / 1000).toFixed(1)} s = ${fmt(perMinute)} a minute, ${stats.throttled} throttled (by route ${JSON.stringify(by)})`);
      runs.push({ ...run, apiCalls, perMinute, throttled: stats.throttled as number });
    } finally {
      dir.remove();
    }
  }
  checkRuns(ctx, '3', runs, n);
  const cmd = reproduce(plan, '3');
  const b = busyOf(runs, 'coll', ctx.rx.kind === 'fluent-bit' ? 'fb' : 'rx');
  const used = runs.map((r) => (r.perMinute / quota) * 100);
  const throttledPct = runs.map((r) => (r.throttled / r.apiCalls) * 100);
  ctx.note(`scenario 3: requests a minute = API calls (start, list, content, blob) between the first and the last one the simulator received; throttled = answers refused by its quota (403 AF429): ${runs.map((r) => `${r.throttled} of ${r.apiCalls}`).join(', ')}`);
  return [
    { scenario: '3', figure: `API calls a minute achieved (${latency} ms a call)`, values: runs.map((r) => r.perMinute), unit: '/min', busy: b, command: cmd },
    { scenario: '3', figure: `share of the ${quota.toLocaleString('en-US')}/min quota used`, values: used, unit: '%', digits: 1, target: '≥ 90%', met: median(used) >= 90, busy: b, command: cmd },
    { scenario: '3', figure: 'throttled answers (of API calls)', values: throttledPct, unit: '%', digits: 2, target: '< 1%', met: median(throttledPct) < 1, busy: b, command: cmd },
    { scenario: '3', figure: `records/s (${n.toLocaleString('en-US')} records)`, values: runs.map((r) => r.records / r.wallSeconds), unit: '', busy: b, command: cmd },
  ];
}

/** Drains one simulator `runs` times (fresh state each time) and returns the runs. */
async function drainRepeatedly(ctx: BenchContext, label: string, o: { dir: string; simPid: number; config: string; stateDir: string; expected: number; runs: number }): Promise<CollectorRun[]> {
  const out: CollectorRun[] = [];
  for (let i = 0; i < o.runs && !interruptedBy(); i++) {
    ctx.log(` ${label}, run ${i + 1}/${o.runs}`);
    out.push(await runCollector(ctx, { config: o.config, stateDir: o.stateDir, simPid: o.simPid, expected: o.expected, usageDir: o.dir }));
  }
  return out;
}

/** Scenario 4: peak RSS for a small and a large backlog, and for one large blob. */
export async function memory(ctx: BenchContext): Promise<Row[]> {
  const { plan } = ctx;
  const { memorySmall, memoryLarge, memoryLargeRuns, bigBlobMiB } = plan.sizes;
  const cmd = reproduce(plan, '4');
  const backlog = async (n: number, runs: number) => {
    const dir = tempDir('m365-bench-4-');
    try {
      ctx.log(`scenario 4: simulator generating ${n.toLocaleString('en-US')} records …`);
      const sim = await startSimulate(dir.path, ['--records', String(n), '--seed', '44']);
      try {
        const config = path.join(dir.path, 'collector.yaml');
        const stateDir = path.join(dir.path, 'state');
        configFromSimulate(sim.configFile, config, { port: ctx.rx.port, stateDir, liftBudget: true });
        const r = await drainRepeatedly(ctx, `${n.toLocaleString('en-US')} records`, { dir: dir.path, simPid: sim.child.pid, config, stateDir, expected: n, runs });
        return { runs: r, simPeakRssMb: peakRssMbOf(sim.child.pid) ?? NaN };
      } finally {
        await sim.child.stop();
      }
    } finally {
      dir.remove();
    }
  };
  const small = await backlog(memorySmall, plan.runs);
  checkRuns(ctx, '4', small.runs, memorySmall);
  const large = interruptedBy() ? { runs: [], simPeakRssMb: NaN } : await backlog(memoryLarge, Math.min(plan.runs, memoryLargeRuns));
  checkRuns(ctx, '4', large.runs, memoryLarge);

  let blob: CollectorRun[] = [];
  let blobMb = NaN;
  if (!interruptedBy()) {
    const dir = tempDir('m365-bench-4b-');
    try {
      ctx.log(`scenario 4: one blob of ${bigBlobMiB} MiB …`);
      const host = await startHost(dir.path, ['big-blob', String(bigBlobMiB)]);
      try {
        blobMb = (host.ready.blobBytes as number) / 1e6;
        const config = path.join(dir.path, 'collector.yaml');
        const stateDir = path.join(dir.path, 'state');
        configFromHost(host.ready, config, { port: ctx.rx.port, stateDir, lookbackHours: 2 });
        blob = await drainRepeatedly(ctx, `one ${bigBlobMiB} MiB blob`, { dir: dir.path, simPid: host.child.pid, config, stateDir, expected: host.ready.records as number, runs: plan.runs });
        checkRuns(ctx, '4', blob, host.ready.records as number);
        ctx.note(`scenario 4: the large blob holds ${(host.ready.records as number).toLocaleString('en-US')} synthetic records, ${blobMb.toFixed(1)} MB of JSON (served by test/bench/sim-host.ts: simulate cuts a corpus into blobs of 1-80 records)`);
      } finally {
        await host.child.stop();
      }
    } finally {
      dir.remove();
    }
  }
  const rss = (runs: CollectorRun[]) => runs.map((r) => r.peakRssMb);
  const growth = median(rss(large.runs)) / median(rss(small.runs));
  const k = (x: number) => x.toLocaleString('en-US');
  const fb = ctx.rx.kind === 'fluent-bit' ? 'fb' : 'rx';
  return [
    { scenario: '4', figure: `collector peak RSS, ${k(memorySmall)} records`, values: rss(small.runs), unit: 'MB', busy: busyOf(small.runs, 'coll', fb), command: cmd },
    { scenario: '4', figure: `collector peak RSS, ${k(memoryLarge)} records`, values: rss(large.runs), unit: 'MB', busy: busyOf(large.runs, 'coll', fb), command: cmd },
    { scenario: '4', figure: `peak RSS ${k(memoryLarge)} ÷ ${k(memorySmall)} (medians)`, values: [growth], unit: '×', target: '≤ 1.10', met: growth <= 1.1, command: cmd },
    { scenario: '4', figure: `collector peak RSS, one ${bigBlobMiB} MiB blob`, values: rss(blob), unit: 'MB', target: '< 200 MB', met: median(rss(blob)) < 200, busy: busyOf(blob, 'coll', fb), command: cmd },
    { scenario: '4', figure: `records/s, ${k(memorySmall)} records`, values: small.runs.map((r) => r.records / r.wallSeconds), unit: '', command: cmd },
    { scenario: '4', figure: `records/s, ${k(memoryLarge)} records`, values: large.runs.map((r) => r.records / r.wallSeconds), unit: '', command: cmd },
    { scenario: '4', figure: `simulator peak RSS serving ${k(memoryLarge)} records (generation included)`, values: [large.simPeakRssMb], unit: 'MB', command: cmd },
  ];
}

/** Scenario 5: `tenants` tenants of `recordsPerTenant` records in one collector process. */
export async function manyTenants(ctx: BenchContext): Promise<Row[]> {
  const { plan } = ctx;
  const { tenants, recordsPerTenant } = plan.sizes;
  const n = tenants * recordsPerTenant;
  const dir = tempDir('m365-bench-5-');
  try {
    ctx.log(`scenario 5: ${tenants} simulators of ${recordsPerTenant.toLocaleString('en-US')} records in one process …`);
    const host = await startHost(dir.path, ['tenants', String(tenants), String(recordsPerTenant)]);
    let runs: CollectorRun[];
    try {
      const config = path.join(dir.path, 'collector.yaml');
      const stateDir = path.join(dir.path, 'state');
      configFromHost(host.ready, config, { port: ctx.rx.port, stateDir, lookbackHours: 21 });
      runs = await drainRepeatedly(ctx, `${tenants} tenants`, { dir: dir.path, simPid: host.child.pid, config, stateDir, expected: n, runs: plan.runs });
    } finally {
      await host.child.stop();
    }
    checkRuns(ctx, '5', runs, n);
    const cmd = reproduce(plan, '5');
    const b = busyOf(runs, 'coll', ctx.rx.kind === 'fluent-bit' ? 'fb' : 'rx');
    return [
      { scenario: '5', figure: `records/s, ${tenants} tenants × ${recordsPerTenant.toLocaleString('en-US')}`, values: runs.map((r) => r.records / r.wallSeconds), unit: '', busy: b, command: cmd },
      { scenario: '5', figure: 'collector CPU per 100k records', values: runs.map((r) => per100k(r.cpuSeconds, r.records)), unit: 's', busy: b, command: cmd },
      { scenario: '5', figure: 'collector peak RSS', values: runs.map((r) => r.peakRssMb), unit: 'MB', busy: b, command: cmd },
      { scenario: '5', figure: `simulators CPU per 100k records (${tenants} in one process)`, values: runs.map((r) => per100k(r.simCpuSeconds, r.records)), unit: 's', busy: b, command: cmd },
    ];
  } finally {
    dir.remove();
  }
}
