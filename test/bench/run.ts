/**
 * `npm run bench`: prints throughput and memory figures; asserts nothing (timings are not tests).
 *
 * 1. End to end: simulator (this process) → collector (child process, measured alone) → Forward
 *    receiver with acks (this process), for two backlog sizes: the collector's peak RSS should not
 *    grow with the backlog (DESIGN guarantee 5: memory bounded by configuration).
 * 2. State: journal cost per delivered blob with a week of done ids, snapshot size, load time.
 * The record codec has its own bench: test/bench/codec.bench.ts.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { simulatorConfigTree } from '../../src/config/simulator-config.ts';
import { startSimulator } from '../../src/simulator/index.ts';
import { StateStore } from '../../src/state/state-store.ts';
import { startForwardReceiver } from '../helpers/forward-receiver.ts';

const here = import.meta.dirname;
const line = (s: string) => process.stdout.write(s + '\n');

line(`m365-forward bench — node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${new Date().toISOString()}`);
try {
  line(`commit ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here }).toString().trim()}`);
} catch {}

async function endToEnd(records: number) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-bench-'));
  const rx = await startForwardReceiver();
  const sim = await startSimulator({ seed: 42, records, spanHours: 40, pageSize: 100 });
  try {
    const caFile = path.join(dir, 'ca.pem');
    writeFileSync(caFile, sim.caPem);
    const tree = simulatorConfigTree({ ...sim, caFile }, { spanHours: 48, statePath: path.join(dir, 'state.json'), forwardPort: rx.port });
    const configFile = path.join(dir, 'bench.yaml');
    writeFileSync(configFile, stringify(tree));
    const bytes = sim.blobs().reduce((n, b) => n + b.records.reduce((m, r) => m + JSON.stringify(r).length, 0), 0);
    const parentCpu = process.cpuUsage();
    const child = spawn(process.execPath, [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : []), '--import', 'tsx', path.join(here, 'collector-child.ts'), configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await new Promise((r) => child.on('close', r));
    const res = JSON.parse(out);
    const pc = process.cpuUsage(parentCpu);
    const simCpu = (pc.user + pc.system) / 1e6;
    const received = rx.entries.filter((e) => e.tag.startsWith('cloud.')).length;
    line(
      `end to end, ${records} records (${(bytes / 2 ** 20).toFixed(1)} MiB of JSON, ${sim.blobs().length} blobs): ` +
        `${res.seconds.toFixed(2)} s, ${Math.round(res.records / res.seconds)} records/s, ${(bytes / 2 ** 20 / res.seconds).toFixed(1)} MiB/s, ` +
        `collector peak RSS ${res.maxRssMiB.toFixed(0)} MiB, collector CPU ${res.cpuSeconds.toFixed(1)} s (simulator + receiver ${simCpu.toFixed(1)} s), receiver got ${received}${res.errors.length ? `, errors: ${res.errors.join('; ')}` : ''}`,
    );
  } finally {
    await sim.close();
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await endToEnd(20_000);
await endToEnd(60_000);
if (process.argv.includes('--quick')) process.exit(0);

// State: a tenant listing 50,000 blobs a day per content type keeps 350,000 done ids per feed for the
// API's 7 days. A delivered blob must cost a journal line, not a rewrite of megabytes.
{
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-bench-state-'));
  const file = path.join(dir, 'state.json');
  const now = Date.now();
  const ref = (i: number) => ({
    contentType: 'Audit.Exchange',
    contentId: `20261125${String(i).padStart(9, '0')}000000$20261125${String(i).padStart(9, '0')}000000$audit_exchange$Audit_Exchange$emea0036`,
    contentUri: `https://manage.office.com/api/v1.0/t/activity/feed/audit/${i}`,
    contentCreated: new Date(now - 3600_000).toISOString(),
    contentExpiration: new Date(now + 6 * 86_400_000).toISOString(),
  });
  const store = new StateStore(file);
  store.load();
  const feeds = ['Audit.AzureActiveDirectory', 'Audit.Exchange', 'Audit.SharePoint', 'Audit.General', 'DLP.All'].map((ct) => store.createFeed(`tenant/${ct}`, '11111111-2222-3333-4444-555555555555', now, 86_400_000));
  const perFeed = 350_000;
  let t0 = performance.now();
  for (const f of feeds) for (let i = 0; i < perFeed; i++) f.delivered(ref(i), now + 6 * 86_400_000, 20, 0);
  const fill = performance.now() - t0;
  t0 = performance.now();
  await store.compact();
  const compactMs = performance.now() - t0;
  const snapshotBytes = statSync(file).size;
  const journal0 = statSync(store.journalFile).size;
  const n = 200;
  t0 = performance.now();
  for (let i = 0; i < n; i++) {
    feeds[i % 5]!.delivered(ref(perFeed + i), now + 6 * 86_400_000, 20, 0);
    await store.flush();
  }
  const flushMs = (performance.now() - t0) / n;
  const perBlob = (statSync(store.journalFile).size - journal0) / n;
  // 20,000 parked blobs: scanning for due ones and re-parking one must stay cheap.
  for (let i = 0; i < 20_000; i++) feeds[0]!.park(ref(10_000_000 + i), 'HTTP 500', now + 60_000);
  t0 = performance.now();
  for (let i = 0; i < 100; i++) feeds[0]!.dueRetries(now + 120_000);
  const dueMs = (performance.now() - t0) / 100;
  await store.close();
  t0 = performance.now();
  new StateStore(file).load();
  const loadMs = performance.now() - t0;
  line(
    `state, 5 feeds x ${perFeed.toLocaleString('en')} done ids + 20,000 parked blobs: snapshot ${(snapshotBytes / 2 ** 20).toFixed(1)} MiB written in ${compactMs.toFixed(0)} ms (fill ${fill.toFixed(0)} ms); ` +
      `a delivered blob then costs ${perBlob.toFixed(0)} journal bytes and ${flushMs.toFixed(2)} ms per flush (write + fdatasync, one blob per flush); ` +
      `due-retry scan over 20,000 parked ${dueMs.toFixed(2)} ms; load (snapshot + journal) ${loadMs.toFixed(0)} ms`,
  );
  rmSync(dir, { recursive: true, force: true });
}
