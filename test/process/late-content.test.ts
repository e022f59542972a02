/**
 * README "Delivery guarantees", third point: "Late content is caught, within the API's whole
 * retention." A service (`run` without `--once`, a separate process) polls a simulator that holds
 * back a tenth of its blobs and lists them only LATE_RELEASE_S seconds after it starts, dated 30
 * hours and 6 days before that release (the API's §4 "Latency": content can appear days late).
 * 30 h is beyond the 2 h overlap and 6 d beyond the 21 h initial look-back, so only the sweep of the
 * whole retention finds them. Every record served must arrive exactly once, the status records must
 * count every late blob (`lateBlobs`) and report the 6-day delay (`maxLatenessSeconds`), and nothing
 * is lost. No Fluent Bit: the test's own Forward receiver, so it runs in every clone.
 *
 * The simulator runs in this process, built from the flags `simulate --records 3000 --late 0.1
 * --late-by 30h,6d --late-release 20 --write-config FILE` parses (simulatorOptions), with the config
 * that command writes (simulatorConfigTree/simulatorConfigYaml) and the short intervals edited in:
 * the ready line gives only the number of late blobs, the test needs every record id and which
 * blobs are late.
 *
 * node --import tsx --test test/process/late-content.test.ts      (about 30 s)
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { simulatorOptions } from '../../src/commands/simulate.ts';
import { simulatorConfigTree, simulatorConfigYaml } from '../../src/config/simulator-config.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { StateStore } from '../../src/state/state-store.ts';
import { spawnCli } from '../helpers/cli.ts';
import { startForwardReceiver, type ForwardReceiver } from '../helpers/forward-receiver.ts';

const STATUS = 'm365forward.status';
const LATE_RELEASE_S = 20;
const DEADLINE_MS = 60_000;
const SIX_DAYS_S = 6 * 86_400;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

test('a service finds blobs listed 30 h and 6 days late through its sweep: every record once, lateBlobs and maxLatenessSeconds reported, nothing lost', { timeout: 3 * 60_000 }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-late-'));
  let sim: Simulator | undefined;
  let rx: ForwardReceiver | undefined;
  let child: ChildProcess | undefined;
  const guard = () => child?.kill('SIGKILL');
  process.on('exit', guard);
  try {
    sim = await startSimulator(
      simulatorOptions({ port: 0, seed: 5150, records: 3000, span: 20, late: 0.1, lateBy: ['30h,6d'], lateRelease: LATE_RELEASE_S, pageSize: 32 }),
    );
    rx = await startForwardReceiver();
    const startedAt = sim.now();
    const blobs = sim.blobs();
    const late = blobs.filter((b) => b.availableAt > startedAt);
    const lateBy = new Set(late.map((b) => Math.round((b.availableAt - Date.parse(b.contentCreated)) / 3600_000)));
    assert.ok(late.length >= 5, `some blobs are released late (${late.length})`);
    assert.deepEqual([...lateBy].sort((a, b) => a - b), [30, 144], 'late blobs dated 30 h and 6 days before their release');
    const served = blobs.flatMap((b) => b.records.map((r) => r.Id as string));
    assert.equal(new Set(served).size, served.length, 'every synthetic record has its own Id');
    const lateByType = new Map<string, number>();
    for (const b of late) lateByType.set(b.contentType, (lateByType.get(b.contentType) ?? 0) + 1);

    // What `simulate --write-config FILE` writes, with the intervals shortened (the YAML edit).
    const caFile = path.join(dir, 'sim-ca.pem');
    writeFileSync(caFile, sim.caPem);
    const statePath = path.join(dir, 'sim.state.json');
    const tree = simulatorConfigTree({ ...sim, caFile }, { spanHours: 20, statePath, forwardPort: rx.port }) as Record<string, any>;
    tree.polling = { ...tree.polling, interval: '2s', sweep_interval: '5s' };
    tree.status = { interval: '2s' };
    const cfg = path.join(dir, 'sim.yaml');
    writeFileSync(cfg, simulatorConfigYaml(tree), { mode: 0o600 });

    child = spawnCli(['run', '-c', cfg]);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-8000)));
    const exited = new Promise<number | null>((resolve) => child!.on('close', (code) => resolve(code)));

    const audit = () => rx!.entries.filter((e) => e.tag !== STATUS);
    /** Each feed's newest status record. */
    const lastStatus = () => {
      const m = new Map<string, Record<string, unknown>>();
      for (const e of rx!.entries) if (e.tag === STATUS) m.set(e.record.contentType as string, e.record);
      return m;
    };
    const lateReported = () => [...lastStatus().values()].reduce((n, s) => n + (s.lateBlobs as number), 0);
    const want = new Set(served);
    const deadline = Date.now() + DEADLINE_MS;
    let exitedEarly: number | null | undefined;
    void exited.then((code) => (exitedEarly = code));
    while (Date.now() < deadline && exitedEarly === undefined) {
      const got = new Set(audit().map((e) => e.record.Id));
      if ([...want].every((id) => got.has(id)) && lateReported() >= late.length) break;
      await sleep(100);
    }
    assert.equal(exitedEarly, undefined, `the service exited by itself (code ${exitedEarly}):\n${stderr}`);
    t.diagnostic(`${audit().length} records and ${lateReported()} late blobs reported ${Math.round((sim.now() - startedAt) / 1000)} s after the simulator started (release after ${LATE_RELEASE_S} s)`);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, `SIGTERM ends the service with exit 0:\n${stderr}`);
    child = undefined;

    // Every served record exactly once.
    const counts = new Map<string, number>();
    for (const e of audit()) counts.set(e.record.Id as string, (counts.get(e.record.Id as string) ?? 0) + 1);
    const missing = served.filter((id) => !counts.has(id));
    const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    const unknown = [...counts.keys()].filter((id) => !want.has(id));
    assert.deepEqual({ missing: missing.length, twice: twice.length, unknown: unknown.length }, { missing: 0, twice: 0, unknown: 0 }, `every record once (missing e.g. ${missing.slice(0, 3)}, twice e.g. ${twice.slice(0, 3)})`);
    assert.equal(audit().length, served.length);

    // The status records: every late blob counted in its feed, the 6-day delay, no loss.
    const status = lastStatus();
    assert.equal(status.size, 5, 'a status record from each feed');
    for (const [ct, s] of status) {
      assert.equal(s.lateBlobs, lateByType.get(ct) ?? 0, `${ct}: lateBlobs`);
      assert.equal(s.lost, 0, `${ct}: lost`);
      assert.equal(s.gaps, 0, `${ct}: gaps`);
      assert.equal(s.retryQueue, 0, `${ct}: retryQueue`);
    }
    assert.equal(lateReported(), late.length, 'lateBlobs over the feeds = the blobs released late');
    const maxLateness = Math.max(...[...status.values()].map((s) => s.maxLatenessSeconds as number));
    // Found at the first sweep after the release: 6 days and the few seconds it took.
    assert.ok(maxLateness >= SIX_DAYS_S && maxLateness <= SIX_DAYS_S + 120, `maxLatenessSeconds is about 6 days: ${maxLateness} s`);

    // The state agrees.
    const feeds = [...new StateStore(statePath).load().values()];
    assert.equal(feeds.length, 5);
    assert.equal(feeds.reduce((n, f) => n + f.s.recordsDelivered, 0), served.length);
    assert.equal(feeds.reduce((n, f) => n + f.s.lateBlobs, 0), late.length);
    for (const f of feeds) {
      assert.equal(f.s.lost + f.s.gaps + f.s.deadLettered + f.retry.size, 0, `${f.key}: nothing lost, gapped, set aside or parked`);
    }
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) {
      const c = child;
      await new Promise((resolve) => {
        c.once('close', resolve);
        c.kill('SIGKILL');
      });
    }
    process.off('exit', guard);
    await rx?.close();
    await sim?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
