/**
 * `npm run bench`: prints throughput and memory figures; asserts nothing (timings are not tests).
 *
 * 1. End to end: simulator (this process) → collector (child process, measured alone) → Forward
 *    receiver with acks (this process), for two backlog sizes: the collector's peak RSS should not
 *    grow with the backlog (DESIGN guarantee 5: memory bounded by configuration).
 * 2. Record → PackedForward frames (the hot path of the sink).
 * 3. Checkpoint write (atomic, fsync) of a state with five feeds.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { simulatorConfigTree } from '../../src/config/simulator-config.ts';
import { newFeedState } from '../../src/polling/checkpoint.ts';
import { buildFrames } from '../../src/sink/frames.ts';
import { createRouter } from '../../src/sink/route.ts';
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

// Frames: route + encode + cap, as the sink does for every blob.
{
  const sim = await startSimulator({ seed: 1, records: 20_000 });
  const router = createRouter('cloud.office365.management.{table}', {});
  const routed = sim.blobs().flatMap((b) => b.records.map((record) => ({ tag: router.tagFor(record, b.contentType as never), timeMs: Date.now(), record })));
  await sim.close();
  const t0 = performance.now();
  let frames = 0;
  for (let i = 0; i < 3; i++) frames += buildFrames(routed, 1024 * 1024).length;
  const s = (performance.now() - t0) / 1000;
  line(`frames: ${Math.round((routed.length * 3) / s)} records/s through route+encode+cap (${frames / 3} frames of ≤1 MiB for ${routed.length} records)`);
}

// Checkpoint writes.
{
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-bench-state-'));
  const store = new StateStore(path.join(dir, 'state.json'));
  const state = { version: 1, feeds: {} as Record<string, ReturnType<typeof newFeedState>> };
  for (const ct of ['a', 'b', 'c', 'd', 'e']) {
    const f = newFeedState(Date.now(), 3_600_000);
    for (let i = 0; i < 200; i++) f.done[`20261125${i}$20261125${i}$audit_exchange$Audit_Exchange$emea0036`] = Date.now();
    state.feeds[`tenant/${ct}`] = f;
  }
  const n = 200;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await store.save(state);
  const ms = (performance.now() - t0) / n;
  line(`checkpoint: ${ms.toFixed(2)} ms per atomic write (5 feeds, 1,000 done ids, fsync + rename)`);
  rmSync(dir, { recursive: true, force: true });
}
