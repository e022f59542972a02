/**
 * README "Delivery guarantees", first point: "If the collector is killed at any moment (even
 * `kill -9`), the next run sends again at most the blobs that were in flight: duplicates are
 * possible, loss is not." Proved with the real Fluent Bit and the collector as a separate process
 * (`run --once`, exactly as a user starts it), SIGKILLed at KILLS moments drawn from a seeded PRNG,
 * restarted each time (it takes over the lock the killed one left), then run once to completion.
 * Every other moment is a time (0.3-1.5 s after the start: start-up, token, listing), the others a
 * point in the run's own progress (after 100-2,000 of its records reached the receiver: mid-
 * delivery and checkpointing), so the kills land during the work however fast the collector is.
 *
 * The simulator runs in this process, built from the same flags `simulate --records 50000
 * --page-size 50 --seed N --write-config FILE` parses (simulatorOptions) and with the config that
 * command writes (simulatorConfigTree/simulatorConfigYaml): here the test can read every record
 * id it serves, for the set equality at the end; the ready line only gives counts.
 *
 * Printed (t.diagnostic): each kill's moment and what that run had done by then (records that
 * reached the receiver, records checkpointed), how many kills landed mid-delivery (the run had
 * records reach Fluent Bit and had not finished), how many left records in flight (in Fluent Bit
 * but not checkpointed: those are sent again), and the duplicates at the end. Duplicates are
 * allowed; a missing record fails.
 *
 * Between kills the test waits until the receiver has been quiet for QUIET_MS (records leave
 * Fluent Bit at its flush ticks, 0.2 s here: test/helpers/fluent-bit.ts), so each run's count is
 * its own; that wait only sorts the diagnostics, nothing is asserted on timings. At the end it
 * waits for Fluent Bit's metrics to show everything it took in flushed (see
 * test/integration/fluent-bit-e2e.test.ts, settle) so the duplicate count is complete.
 *
 * node --import tsx --test test/process/sigkill.test.ts      (about 1-2 minutes)
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
import { runCli, spawnCli } from '../helpers/cli.ts';
import { freePort, needFluentBit, startFluentBit, waitFor, type FluentBit, recordCounts } from '../helpers/fluent-bit.ts';
import { Rng } from '../../src/simulator/prng.ts';

const SIM_SEED = 4242;
const KILL_SEED = 20_261_201;
const RECORDS = 50_000;
const KILLS = 20;
const STATUS = 'm365forward.status';
const QUIET_MS = 600;

/** The simulator's seeded PRNG (mulberry32), as a function. */
function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves once `reached()` holds (polled), or after `maxMs` whatever happens. */
async function untilReceived(reached: () => boolean, maxMs: number): Promise<void> {
  const end = Date.now() + maxMs;
  while (!reached() && Date.now() < end) await sleep(20);
}


/** Waits until the receiver got nothing new for QUIET_MS (diagnostics only; see the header). */
async function quiet(fb: FluentBit): Promise<void> {
  let last = -1;
  let since = Date.now();
  const deadline = Date.now() + 15_000;
  while (Date.now() - since < QUIET_MS && Date.now() < deadline) {
    const n = fb.receiver.entries.length;
    if (n !== last) {
      last = n;
      since = Date.now();
    }
    await sleep(50);
  }
}

/** Sum of recordsDelivered over the feeds, read from the state files as they are on disk now. */
function checkpointedRecords(statePath: string): number {
  return [...new StateStore(statePath).load().values()].reduce((n, f) => n + f.s.recordsDelivered, 0);
}

interface Kill {
  n: number;
  /** The kill moment: a time after the start, or a count of this run's records at the receiver. */
  moment: string;
  /** The run ended by itself before its kill moment (nothing was left to do, or it failed). */
  exitedFirst?: number | null;
  received: number;
  checkpointed: number;
}

test(`run --once SIGKILLed at ${KILLS} seeded moments and restarted, then run to completion: every one of ${RECORDS.toLocaleString('en')} records reaches Fluent Bit, the state says all delivered`, { timeout: 5 * 60_000 }, async (t) => {
  if (!needFluentBit(t)) return;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-sigkill-'));
  const children = new Set<ChildProcess>();
  // A collector must not outlive this process, even when the test runner dies first.
  const guard = () => children.forEach((c) => c.kill('SIGKILL'));
  process.on('exit', guard);
  let fb: FluentBit | undefined;
  let sim: Simulator | undefined;
  try {
    const httpPort = await freePort();
    fb = await startFluentBit({ service: { HTTP_Server: 'On', HTTP_Listen: '127.0.0.1', HTTP_Port: String(httpPort) } });
    const rx = fb.receiver;
    sim = await startSimulator(simulatorOptions({ port: 0, seed: SIM_SEED, records: RECORDS, span: 20, late: 0, pageSize: 50 }));
    // What `simulate --write-config FILE` writes: the CA beside it and a config pointing at the simulator.
    const caFile = path.join(dir, 'sim-ca.pem');
    writeFileSync(caFile, sim.caPem);
    const statePath = path.join(dir, 'sim.state.json');
    const cfg = path.join(dir, 'sim.yaml');
    writeFileSync(cfg, simulatorConfigYaml(simulatorConfigTree({ ...sim, caFile }, { spanHours: 20, statePath })), { mode: 0o600 });
    const runArgs = ['run', '-c', cfg, '--once', '--forward-port', String(fb.port)];

    const blobs = sim.blobs();
    const served = new Set<string>();
    for (const b of blobs) for (const r of b.records) served.add(r.Id as string);
    assert.equal(served.size, RECORDS, 'every synthetic record has its own Id');

    const audit = () => rx.entries.filter((e) => e.tag !== STATUS);
    const random = prng(KILL_SEED);
    const kills: Kill[] = [];
    let exitedFirst = 0;
    for (let runs = 0; kills.length < KILLS; runs++) {
      assert.ok(runs < KILLS * 3, `only ${kills.length} of ${KILLS} kills landed before the runs ended by themselves`);
      const byProgress = kills.length % 2 === 1;
      const afterMs = Math.round(300 + random() * 1200);
      const afterRecords = Math.round(100 + random() * 1900);
      const moment = byProgress ? `after ${afterRecords} of its records reached the receiver` : `${afterMs} ms after its start`;
      const receivedBefore = audit().length;
      const checkpointedBefore = checkpointedRecords(statePath);
      const child = spawnCli(runArgs);
      children.add(child);
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      const killAt = byProgress ? untilReceived(() => audit().length - receivedBefore >= afterRecords, 60_000) : sleep(afterMs);
      const first = await Promise.race([exited.then((code) => ({ code })), killAt.then(() => undefined)]);
      if (first === undefined) child.kill('SIGKILL');
      const code = await exited;
      children.delete(child);
      await quiet(fb);
      const record: Kill = { n: kills.length + 1, moment, received: audit().length - receivedBefore, checkpointed: checkpointedRecords(statePath) - checkpointedBefore };
      if (first !== undefined) {
        // Ended by itself before its moment: it must have succeeded (it does not count as a kill).
        assert.equal(code, 0, `a run that was not killed failed (exit ${code}):\n${stderr}`);
        exitedFirst++;
        t.diagnostic(`run ended by itself before its kill moment (${moment}), exit 0: ${record.received} records received, ${record.checkpointed} checkpointed`);
        continue;
      }
      kills.push(record);
      t.diagnostic(`kill ${record.n} ${moment}: ${record.received} records reached the receiver, ${record.checkpointed} checkpointed`);
    }

    // The last run, to completion.
    const last = await runCli(runArgs, { timeoutMs: 180_000 });
    assert.equal(last.code, 0, `the final run --once succeeds:\n${last.stderr.slice(-3000)}`);

    // Every served record arrived (at least once), and nothing that was not served.
    await waitFor(() => new Set(audit().map((e) => e.record.Id)).size >= served.size, `all ${served.size} record ids at the receiver`, fb, 120_000);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const c = await recordCounts(httpPort);
      if (c && c.out === c.in && rx.entries.length >= c.in) break;
      if (Date.now() > deadline) assert.fail(`Fluent Bit did not settle: ${JSON.stringify(c)}, ${rx.entries.length} at the receiver`);
      await sleep(100);
    }
    const got = audit().map((e) => e.record.Id as string);
    const gotSet = new Set(got);
    const missing = [...served].filter((id) => !gotSet.has(id));
    const unknown = [...gotSet].filter((id) => !served.has(id));
    assert.deepEqual(missing, [], `${missing.length} served records never arrived`);
    assert.deepEqual(unknown, [], 'only served records arrived');

    const midDelivery = kills.filter((k) => k.received > 0).length;
    const inFlight = kills.filter((k) => k.received > k.checkpointed).length;
    const duplicates = got.length - served.size;
    t.diagnostic(`${kills.length} kills: ${midDelivery} landed mid-delivery (records of that run had reached Fluent Bit), ${inFlight} with records in Fluent Bit but not yet checkpointed; ${exitedFirst} run(s) ended before their kill moment`);
    t.diagnostic(`${got.length} records received for ${served.size} served: ${duplicates} duplicates (allowed: at least once)`);
    assert.ok(kills.length >= KILLS);
    assert.ok(midDelivery >= 1, 'at least one kill landed mid-delivery (else this test proves nothing about in-flight data)');

    // The state says every record delivered, nothing lost, parked or set aside.
    const feeds = [...new StateStore(statePath).load().values()];
    assert.equal(feeds.length, 5);
    assert.equal(feeds.reduce((n, f) => n + f.s.recordsDelivered, 0), RECORDS, 'recordsDelivered over the feeds');
    assert.equal(feeds.reduce((n, f) => n + f.s.blobsDelivered, 0), blobs.length, 'blobsDelivered over the feeds');
    for (const f of feeds) {
      assert.equal(f.s.lost, 0, `${f.key}: lost`);
      assert.equal(f.s.gaps, 0, `${f.key}: gaps`);
      assert.equal(f.s.deadLettered, 0, `${f.key}: deadLettered`);
      assert.equal(f.retry.size, 0, `${f.key}: retry queue`);
    }
  } finally {
    await Promise.all([...children].map((c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(null) : (c.once('close', resolve), c.kill('SIGKILL'))))));
    process.off('exit', guard);
    await fb?.stop();
    await sim?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
