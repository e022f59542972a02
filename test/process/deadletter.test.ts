/**
 * One bad record never costs the others (DESIGN guarantee 4), as an operator meets it: `run --once`
 * dead-letters a record too large for `output.forward.max_record_bytes` and delivers the rest of
 * its blob; `deadletter list` shows it; after the limit is raised, `deadletter resend` delivers it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parse as parseYaml, stringify } from 'yaml';
import { repoRoot, runCli, spawnCli, startSimulateProcess } from '../helpers/cli.ts';
import { startForwardReceiver, type ForwardReceiver } from '../helpers/forward-receiver.ts';

let dir: string;
let rx: ForwardReceiver;
let sim: Awaited<ReturnType<typeof startSimulateProcess>>;
let configFile: string;
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'm365-dl-'));
  rx = await startForwardReceiver({ bufferMaxSize: 16 * 1024 * 1024 });
  const t = new Date(Date.now() - 3600_000).toISOString().slice(0, 19);
  const lines = [
    { Id: 'before', CreationTime: t, Workload: 'Exchange', Operation: 'Send' },
    { Id: 'huge', CreationTime: t, Workload: 'Exchange', Operation: 'Send', Body: 'x'.repeat(2_000_000) },
    { Id: 'after', CreationTime: t, Workload: 'Exchange', Operation: 'Send' },
  ].map((r) => JSON.stringify(r));
  const corpus = path.join(dir, 'corpus.ndjson');
  writeFileSync(corpus, lines.join('\n') + '\n');
  configFile = path.join(dir, 'sim.yaml');
  sim = await startSimulateProcess(['--corpus', corpus, '--span', '2', '--write-config', configFile]);
  const cfg = parseYaml(readFileSync(configFile, 'utf8'));
  cfg.output.forward.max_record_bytes = 1024 * 1024;
  writeFileSync(configFile, stringify(cfg));
});
after(async () => {
  await sim?.stop();
  await rx?.close();
  rmSync(dir, { recursive: true, force: true });
});

const ids = () => rx.entries.filter((e) => e.tag.startsWith('cloud.')).map((e) => e.record.Id).sort();

test('dead-lettered, listed, then resent after the limit was raised', async () => {
  const run = await runCli(['run', '-c', configFile, '--once', '--forward-port', String(rx.port)]);
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /1 record\(s\) could not be sent and were written to .*\.deadletter\.ndjson \(see `m365-forward deadletter list`\)/);
  assert.match(run.stderr, /"msg":"record dead-lettered".*"id":"huge"/);
  assert.deepEqual(ids(), ['after', 'before'], 'the rest of the blob is delivered');

  const list = await runCli(['deadletter', 'list', '-c', configFile]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /: 1 record\(s\)/);
  assert.match(list.stdout, /simulator\/Audit\.Exchange\t.*\tId huge\t2000\d\d\d bytes\tcloud\.office365\.management\.exchange\t.*max_record_bytes = 1048576/);
  assert.ok(!list.stdout.includes('xxxxxxxxxx'), 'the record itself is not printed');

  // Resend needs the state to itself: refused while a collector runs.
  const child = spawnCli(['run', '-c', configFile, '--forward-port', String(rx.port)]);
  const closed = new Promise((r) => child.on('close', r));
  try {
    // The collector first holds the lock (its pid in it): a resend started alongside it could
    // otherwise take the lock first and make the collector the one refused.
    const lockFile = `${parseYaml(readFileSync(configFile, 'utf8')).state.path}.lock`;
    for (let i = 0; i < 200 && !(existsSync(lockFile) && readFileSync(lockFile, 'utf8').includes(String(child.pid))); i++) {
      assert.equal(child.exitCode, null, 'the collector is running');
      await new Promise((r) => setTimeout(r, 50));
    }
    let refused;
    for (let i = 0; i < 100; i++) {
      refused = await runCli(['deadletter', 'resend', '-c', configFile, '--forward-port', String(rx.port)]);
      if (/in use by another m365-forward/.test(refused.stderr)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(refused!.code, 1, refused!.stderr);
    assert.match(refused!.stderr, /in use by another m365-forward \(pid \d+\)/);
  } finally {
    child.kill('SIGTERM');
    await closed;
  }

  // Still too large for the current limit: it stays, exit 1.
  const still = await runCli(['deadletter', 'resend', '-c', configFile, '--forward-port', String(rx.port)]);
  assert.equal(still.code, 1, still.stdout + still.stderr);
  assert.match(still.stdout, /resent 0 record\(s\).*1 remain/);

  const cfg = parseYaml(readFileSync(configFile, 'utf8'));
  cfg.output.forward.max_record_bytes = 4 * 1024 * 1024;
  writeFileSync(configFile, stringify(cfg));
  const resent = await runCli(['deadletter', 'resend', '-c', configFile, '--forward-port', String(rx.port)]);
  assert.equal(resent.code, 0, resent.stdout + resent.stderr);
  assert.match(resent.stdout, /resent 1 record\(s\) to forward tcp:\/\/127\.0\.0\.1:\d+, every one acknowledged; 0 remain/);
  assert.deepEqual(ids(), ['after', 'before', 'huge']);
  const got = rx.entries.find((e) => e.record.Id === 'huge')!;
  assert.equal((got.record.Body as string).length, 2_000_000);
  assert.equal(got.tag, 'cloud.office365.management.exchange');
  assert.match((await runCli(['deadletter', 'list', '-c', configFile])).stdout, /: 0 record\(s\)/);
});

/**
 * A full disk gives short writes, not errors (regression: the review found a dead-lettered record
 * counted while its line was torn, and a journal torn in the middle). `ulimit -f` makes write(2)
 * stop short at a file size, deterministically.
 */
test('a short write (full disk) to the dead-letter file or the journal stops the run, leaves no torn line, loses nothing', async () => {
  const cfg = parseYaml(readFileSync(configFile, 'utf8'));
  cfg.output.forward.max_record_bytes = 1024 * 1024;
  cfg.state.path = path.join(dir, 'short', 'state.json');
  const shortConfig = path.join(dir, 'short.yaml');
  writeFileSync(shortConfig, stringify(cfg));
  const limited = (args: string) => runShell(`ulimit -f 64; exec ${process.execPath} --import tsx src/cli.ts ${args}`);
  // A dead-letter file just under the limit: the huge record's line cannot be written whole.
  const dl = `${cfg.state.path}.deadletter.ndjson`;
  mkdirSync(path.dirname(dl), { recursive: true });
  const old = '{"time":"2026-01-01T00:00:00.000Z","tenant":"t","contentType":"Audit.Exchange","contentId":"old","contentCreated":"2026-01-01T00:00:00.000Z","tag":"x","reason":"older","record":{"Id":"old"}}\n';
  writeFileSync(dl, old.repeat(Math.floor((64 * 1024 - 500) / old.length)));
  const before = readFileSync(dl);
  rx.entries.length = 0;
  const r = await limited(`run -c ${shortConfig} --once --forward-port ${rx.port}`);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /cannot write dead-letter file .*: EFBIG/);
  assert.deepEqual(readFileSync(dl), before, 'the dead-letter file is as it was: no torn line');
  // Without the limit, the record is dead-lettered and the rest delivered.
  const again = await runCli(['run', '-c', shortConfig, '--once', '--forward-port', String(rx.port)]);
  assert.equal(again.code, 1, again.stderr); // 1: a record was dead-lettered
  assert.match(again.stderr, /1 record\(s\) could not be sent and were written to/);
  const list = await runCli(['deadletter', 'list', '-c', shortConfig]);
  assert.match(list.stdout, /Id huge/);
});

function runShell(cmd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', cmd], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('resend keeps a damaged entry with its reason and sends a record written twice only once (review findings 9, 12)', async () => {
  const cfg = parseYaml(readFileSync(configFile, 'utf8'));
  cfg.state.path = path.join(dir, 'hand', 'state.json');
  const handConfig = path.join(dir, 'hand.yaml');
  writeFileSync(handConfig, stringify(cfg));
  mkdirSync(path.dirname(cfg.state.path), { recursive: true });
  const meta = (id: string) => `{"time":"2026-11-30T10:00:00.000Z","tenant":"simulator","contentType":"Audit.Exchange","contentId":"blob-${id}","contentCreated":"2026-11-30T10:00:00.000Z","tag":"cloud.office365.management.exchange","reason":"too large"`;
  const twice = `${meta('a')},"record":{"Id":"twice","CreationTime":"2026-11-30T09:59:00","Workload":"Exchange"}}\n`;
  writeFileSync(`${cfg.state.path}.deadletter.ndjson`, twice + twice + `${meta('b')},"record":{"Id":"broken",}}\n`);
  rx.entries.length = 0;
  const r = await runCli(['deadletter', 'resend', '-c', handConfig, '--forward-port', String(rx.port)]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.match(r.stdout, /resent 1 record\(s\) .* 1 remain/);
  assert.match(r.stdout, /still cannot send blob-b .*its record is not valid JSON/);
  assert.deepEqual(rx.entries.filter((e) => e.tag.startsWith('cloud.')).map((e) => e.record.Id), ['twice']);
});
