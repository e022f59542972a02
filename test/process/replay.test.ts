/**
 * `m365-forward replay` (issue 8, "Replay"), every collector a separate process over real sockets:
 * a `run --once` makes the live state, a service (`run`) then holds its lock, and a replay of a
 * sub-range sends exactly the records of the blobs created in that range while the live state file
 * and its journal stay byte-identical. Then the refusals: a range older than the API keeps (exit 2
 * naming the exact limit, on the API's clock), an unknown tenant (exit 2 naming the configured
 * ones), a bad or empty range (exit 2).
 *
 * The simulator runs in this process, from the flags `simulate --records 2500 --late 0.2
 * --clock-offset -3h --write-config FILE` parses (simulatorOptions) and with the config that command
 * writes, as late-content.test.ts does: the test needs every blob's contentCreated and records,
 * which a `simulate` process does not print. Its clock runs 3 h behind this machine's, so a limit
 * computed from the local clock instead of the API's would be 3 h off.
 *
 * node --import tsx --test test/process/replay.test.ts      (about 20 s)
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml, stringify } from 'yaml';
import { simulatorOptions } from '../../src/commands/simulate.ts';
import { simulatorConfigTree, simulatorConfigYaml } from '../../src/config/simulator-config.ts';
import { startSimulator, type SimBlob, type Simulator } from '../../src/simulator/index.ts';
import { runCli, spawnCli } from '../helpers/cli.ts';
import { startForwardReceiver, type ForwardReceiver } from '../helpers/forward-receiver.ts';

const STATUS = 'm365forward.status';
const HOUR = 3600_000;
const DAY = 24 * HOUR;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** An instant as the CLI takes it, to the second. */
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const floorSec = (ms: number) => Math.floor(ms / 1000) * 1000;

let dir: string;
let sim: Simulator;
let live: ForwardReceiver;
let replayRx: ForwardReceiver;
let cfg: string;
let statePath: string;
let service: ChildProcess | undefined;
const guard = () => service?.kill('SIGKILL');

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'm365-replay-'));
  process.on('exit', guard);
  sim = await startSimulator(simulatorOptions({ port: 0, seed: 808, records: 2500, span: 20, late: 0.2, pageSize: 16, clockOffset: '-3h' }));
  live = await startForwardReceiver();
  replayRx = await startForwardReceiver();
  const caFile = path.join(dir, 'sim-ca.pem');
  writeFileSync(caFile, sim.caPem);
  statePath = path.join(dir, 'live.state.json');
  cfg = path.join(dir, 'sim.yaml');
  writeFileSync(cfg, simulatorConfigYaml(simulatorConfigTree({ ...sim, caFile }, { spanHours: 20, statePath, forwardPort: live.port })), { mode: 0o600 });
});

after(async () => {
  if (service && service.exitCode === null && service.signalCode === null) {
    service.kill('SIGCONT');
    service.kill('SIGKILL');
  }
  process.off('exit', guard);
  await sim?.close();
  await live?.close();
  await replayRx?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** sha256 of each file beside the state (the snapshot, its journal, the lock, any dead-letter file). */
function stateFiles(): Map<string, string> {
  const base = path.basename(statePath);
  const out = new Map<string, string>();
  for (const name of readdirSync(dir).filter((n) => n.startsWith(base)).sort()) {
    out.set(name, createHash('sha256').update(readFileSync(path.join(dir, name))).digest('hex'));
  }
  return out;
}

/** The record Ids of these blobs, sorted (a multiset). */
const idsOf = (blobs: readonly SimBlob[]) => blobs.flatMap((b) => b.records.map((r) => String(r.Id))).sort();

describe('replay', () => {
  test('a sub-range is sent again while a service holds the lock: exactly its records, the live state byte-identical, exit 0', { timeout: 120_000 }, async () => {
    const once = await runCli(['run', '-c', cfg, '--once']);
    assert.equal(once.code, 0, once.stderr);
    const all = sim.blobs();
    assert.equal(live.entries.filter((e) => e.tag !== STATUS).length, all.reduce((n, b) => n + b.recordCount, 0), 'the live run collected everything');

    // A service on the same state: it holds the lock for the whole replay.
    service = spawnCli(['run', '-c', cfg]);
    let serviceErr = '';
    service.stderr!.on('data', (d) => (serviceErr = (serviceErr + d).slice(-8000)));
    const serviceExit = new Promise<number | null>((resolve) => service!.on('close', (c) => resolve(c)));
    const lockFile = `${statePath}.lock`;
    const lockPid = () => (existsSync(lockFile) ? (JSON.parse(readFileSync(lockFile, 'utf8')) as { pid: number }).pid : undefined);
    for (let i = 0; i < 400 && lockPid() !== service.pid; i++) await sleep(50);
    assert.equal(lockPid(), service.pid, `the service holds the lock: ${serviceErr}`);
    // The service writes the state itself at every poll; frozen (SIGSTOP), it can write nothing, so
    // any change to the files below could only come from the replay. It still holds the lock.
    service.kill('SIGSTOP');
    const before = stateFiles();
    assert.ok(before.has(path.basename(statePath)) && before.has(`${path.basename(statePath)}.journal`), [...before.keys()].join(', '));

    // A range well inside the simulator's 20 h, in the API's time; --to written with an offset.
    const apiNow = sim.now();
    const from = floorSec(apiNow - 14 * HOUR);
    const to = floorSec(apiNow - 6 * HOUR);
    const toWithOffset = new Date(to + 2 * HOUR).toISOString().replace(/\.\d{3}Z$/, '+02:00');
    const inRange = all.filter((b) => Date.parse(b.contentCreated) >= from && Date.parse(b.contentCreated) < to);
    assert.ok(inRange.length >= 5 && inRange.length < all.length - 5, `a true sub-range: ${inRange.length} of ${all.length} blobs`);

    const r = await runCli(['replay', '-c', cfg, '--tenant', 'simulator', '--from', iso(from), '--to', toWithOffset, '--forward-port', String(replayRx.port)]);
    assert.equal(r.code, 0, r.stderr);
    const got = replayRx.entries.filter((e) => e.tag !== STATUS);
    assert.equal(replayRx.entries.length, got.length, 'a replay sends no status records');
    assert.deepEqual(got.map((e) => String(e.record.Id)).sort(), idsOf(inRange), 'exactly the records of the blobs created in the range, each once');
    for (const e of got) assert.match(e.tag, /^cloud\.office365\.management\.[a-z0-9]+$/);
    const records = inRange.reduce((n, b) => n + b.recordCount, 0);
    assert.match(r.stderr, new RegExp(`content created from ${iso(from)} to ${iso(to)}`));
    assert.match(r.stderr, new RegExp(`sent ${records} records in ${inRange.length} blobs to forward tcp://127\\.0\\.0\\.1:${replayRx.port}, every one acknowledged; the live state .* was not touched`));
    for (const ct of ['Audit.Exchange', 'Audit.SharePoint', 'Audit.AzureActiveDirectory', 'Audit.General', 'DLP.All']) {
      const n = inRange.filter((b) => b.contentType === ct);
      assert.match(r.stderr, new RegExp(`  ${ct.replace('.', '\\.')}: ${n.reduce((a, b) => a + b.recordCount, 0)} records in ${n.length} blobs`));
    }

    // One content type only.
    const before2 = replayRx.entries.length;
    const ex = await runCli(['replay', '-c', cfg, '--tenant', 'simulator', '--content-type', 'Audit.Exchange', '--from', iso(from), '--to', iso(to), '--forward-port', String(replayRx.port)]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.deepEqual(replayRx.entries.slice(before2).map((e) => String(e.record.Id)).sort(), idsOf(inRange.filter((b) => b.contentType === 'Audit.Exchange')));

    assert.deepEqual(stateFiles(), before, 'the live state, its journal and lock are byte-identical, and no file was added beside them');
    assert.equal(lockPid(), service.pid, 'the service still holds the lock');

    service.kill('SIGCONT');
    service.kill('SIGTERM');
    assert.equal(await serviceExit, 0, serviceErr);
    assert.ok(!existsSync(lockFile), 'the service released its lock');
  });

  test("a range older than the API keeps: exit 2 naming the exact limit, from the API's clock", async () => {
    const sent = replayRx.entries.length;
    const t0 = sim.now();
    const r = await runCli(['replay', '-c', cfg, '--tenant', 'simulator', '--from', iso(t0 - 7 * DAY), '--forward-port', String(replayRx.port)]);
    const t1 = sim.now();
    assert.equal(r.code, 2, r.stderr);
    const m = /is older than the Management API keeps content: the oldest --from allowed now is (\S+Z) /.exec(r.stderr);
    assert.ok(m, r.stderr);
    // 7 days back less the 10-minute safety margin and the 1-minute slack, up to the second, on
    // the simulator's clock as read from its Date header (one-second resolution: ±2 s).
    const limit = Date.parse(m[1]!);
    const margin = 11 * 60_000;
    assert.ok(limit >= t0 - 7 * DAY + margin - 2000 && limit <= t1 - 7 * DAY + margin + 3000, `${m[1]} vs the API's clock ${iso(t0)}..${iso(t1)}`);
    assert.equal(replayRx.entries.length, sent, 'nothing sent');
    assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('m365-forward:')).length, 1, 'one line');
  });

  test("a range the local clock would call too old but the API's clock keeps is replayed (exit 0, nothing there)", async () => {
    // The API's clock is 3 h behind: from = its now - 7 d + 1 h is inside what it keeps, but 2 h
    // beyond a limit computed from the local clock.
    const from = floorSec(sim.now() - 7 * DAY + HOUR);
    const r = await runCli(['replay', '-c', cfg, '--tenant', 'simulator', '--from', iso(from), '--to', iso(from + HOUR), '--forward-port', String(replayRx.port)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /sent 0 records in 0 blobs/);
  });

  test('an unknown --tenant: exit 2 naming the configured tenants, before anything is listed', async () => {
    const r = await runCli(['replay', '-c', cfg, '--tenant', 'contoso', '--from', iso(sim.now() - HOUR)]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^m365-forward: unknown --tenant "contoso": the config names simulator$/m);
  });

  test('a bad or empty range is a usage error (exit 2), and --tenant and --from are required', async () => {
    const bad = await runCli(['replay', '-c', cfg, '--tenant', 'simulator', '--from', 'yesterday']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--from "yesterday" is not a date and time; use ISO 8601, UTC unless it names an offset/);
    const backwards = await runCli(['replay', '-c', cfg, '--tenant', 'simulator', '--from', '2026-05-01T12:00:00Z', '--to', '2026-05-01T12:00']);
    assert.equal(backwards.code, 2, backwards.stderr);
    assert.match(backwards.stderr, /--from 2026-05-01T12:00:00Z must be before --to 2026-05-01T12:00:00Z/);
    const future = await runCli(['replay', '-c', cfg, '--tenant', 'simulator', '--from', iso(sim.now() + DAY)]);
    assert.equal(future.code, 2, future.stderr);
    assert.match(future.stderr, /is not before the API's now/);
    const missing = await runCli(['replay', '-c', cfg, '--from', iso(sim.now() - HOUR)]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /Missing required argument: tenant/);
  });

  test('a replay lists only its range; a record it cannot send goes to <state>.replay.deadletter.ndjson, never the live file; deadletter resend --state <state>.replay sends it', async () => {
    // One blob alone in its second, 5 days back, holding a record above a 4 KB max_record_bytes.
    const created = floorSec(sim.now() - 5 * DAY);
    const big = { Id: 'replay-too-big', CreationTime: iso(created).slice(0, 19), Workload: 'Exchange', RecordType: 2, Operation: 'Send', Blob: 'x'.repeat(10_000) };
    sim.addRecords([big], { contentCreated: created });
    const tree = parseYaml(readFileSync(cfg, 'utf8'));
    tree.output.forward = { ...tree.output.forward, max_frame_bytes: 4096, max_record_bytes: 4096 };
    const small = path.join(dir, 'small-records.yaml');
    writeFileSync(small, stringify(tree), { mode: 0o600 });
    const before = stateFiles();
    const sent = replayRx.entries.length;
    const calls = sim.stats().byRoute;

    const r = await runCli(['replay', '-c', small, '--tenant', 'simulator', '--content-type', 'Audit.Exchange', '--from', iso(created), '--to', iso(created + 1000), '--forward-port', String(replayRx.port)]);
    assert.equal(r.code, 1, r.stderr);
    const replayDead = `${statePath}.replay.deadletter.ndjson`;
    assert.ok(r.stderr.includes(`1 record(s) could not be sent and were written to ${replayDead} (send them with \`m365-forward deadletter resend -c FILE --state ${statePath}.replay\`)`), r.stderr);
    assert.equal(replayRx.entries.length, sent);
    // It lists its range and nothing else: one listing call (one window of one second, one
    // content type), one download; no baseline listing of the retention before --from, no sweep.
    // (A listing refused because the subscription was not started yet, AF20022, is made again
    // once it is: one more per start, when this test runs alone.)
    const now = sim.stats().byRoute;
    const starts = (now.start ?? 0) - (calls.start ?? 0);
    assert.equal((now.content ?? 0) - (calls.content ?? 0) - starts, 1, 'listing calls');
    assert.equal((now.blob ?? 0) - (calls.blob ?? 0), 1, 'downloads');
    const after = stateFiles();
    assert.ok(!existsSync(`${statePath}.deadletter.ndjson`), 'the live dead-letter file is not written');
    assert.deepEqual([...after.keys()].filter((k) => !before.has(k)), [path.basename(replayDead)]);
    for (const [k, h] of before) assert.equal(after.get(k), h, `${k} unchanged`);
    assert.match(readFileSync(replayDead, 'utf8'), /"contentId":"[^"]+".*"record":\{"Id":"replay-too-big"/);

    const resend = await runCli(['deadletter', 'resend', '-c', cfg, '--state', `${statePath}.replay`, '--forward-port', String(replayRx.port)]);
    assert.equal(resend.code, 0, resend.stdout + resend.stderr);
    assert.deepEqual(replayRx.entries.slice(sent).map((e) => e.record.Id), ['replay-too-big']);
  });
});
