/**
 * Never stuck, always stops (DESIGN guarantee 6b), tried the way an operator would: the CLI as a
 * separate process, a real simulator process, receivers on loopback.
 * Regressions of issue 6 findings 4 (a missing TLS file), 6 (run --once never ending while the
 * shipper is down, SIGTERM waiting for an ack) and the crashes with stack traces.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml, stringify } from 'yaml';
import { generateServerTls } from '../../src/simulator/tls.ts';
import { repoRoot, runCli, spawnCli, startSimulateProcess } from '../helpers/cli.ts';
import { startForwardReceiver } from '../helpers/forward-receiver.ts';

let dir: string;
let sim: Awaited<ReturnType<typeof startSimulateProcess>>;
let configFile: string;
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'm365-life-'));
  configFile = path.join(dir, 'sim.yaml');
  sim = await startSimulateProcess(['--records', '600', '--seed', '31', '--write-config', configFile]);
});
after(async () => {
  await sim?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A copy of the simulator's config, changed by `patch`, with its own state file. */
function variant(name: string, patch: (cfg: any) => void = () => {}): { file: string; state: string } {
  const cfg = parseYaml(readFileSync(configFile, 'utf8'));
  cfg.state.path = path.join(dir, `${name}.state.json`);
  patch(cfg);
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(cfg));
  return { file, state: cfg.state.path };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const oneLine = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('m365-forward:'));

describe('never stuck', () => {
  test('SIGTERM while frames wait for an ack (ack_timeout 10 min): the process is gone within 10 s, lock released', async () => {
    const never = await startForwardReceiver({ ack: 'never' });
    try {
      const v = variant('sigterm', (c) => (c.output.forward.ack_timeout = '600s'));
      const child = spawnCli(['run', '-c', v.file, '--forward-port', String(never.port)]);
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const closed = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
      for (let i = 0; i < 300 && never.frames === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(never.frames > 0, 'frames reached the receiver');
      const t0 = Date.now();
      child.kill('SIGTERM');
      const code = await closed;
      assert.ok(Date.now() - t0 < 10_000, `stopped after ${Date.now() - t0} ms`);
      assert.equal(code, 0, stderr);
      assert.ok(!existsSync(`${v.state}.lock`), 'the lock is released');
    } finally {
      await never.close();
    }
  });

  test('run --once with no shipper listening ends by itself (exit 1), naming what it waited for', async () => {
    const port = await freePort();
    const v = variant('down', (c) => (c.output.forward.ack_timeout = '2s'));
    const t0 = Date.now();
    const r = await runCli(['run', '-c', v.file, '--once', '--forward-port', String(port)], { timeoutMs: 60_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.ok(Date.now() - t0 < 40_000);
    assert.match(r.stderr, new RegExp(`gave up: no ack from forward tcp://127.0.0.1:${port} for 1\\d s \\(connection refused \\(ECONNREFUSED\\)`));
    assert.match(r.stderr, /0 records in 0 blobs acknowledged/);
    assert.ok(!existsSync(`${v.state}.lock`), 'the lock is released');
    assert.ok(!/\n\s+at /.test(r.stderr), 'no stack trace');
  });

  test('run --once --timeout stops at the deadline, keeps what was acked, exit 1', async () => {
    const never = await startForwardReceiver({ ack: 'never' });
    try {
      const v = variant('deadline', (c) => (c.output.forward.ack_timeout = '60s'));
      const r = await runCli(['run', '-c', v.file, '--once', '--timeout', '4s', '--forward-port', String(never.port)], { timeoutMs: 30_000 });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /--timeout 4s reached while waiting for an ack from forward tcp:\/\/127\.0\.0\.1:\d+ \(none for \d+ s/);
      const bad = await runCli(['run', '-c', v.file, '--once', '--timeout', 'soon']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--timeout must be a duration/);
    } finally {
      await never.close();
    }
  });
});

describe('clear errors, never a stack trace', () => {
  test('run -c without a value: one usage line, exit 2', async () => {
    const r = await runCli(['run', '-c']);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(!/\n\s+at /.test(r.stderr), r.stderr);
    assert.match(r.stderr, /m365-forward: Not enough arguments following: c/);
  });

  test('a missing output.forward.tls file is refused at load (exit 2), and no lock is left behind', async () => {
    const v = variant('tls-missing', (c) => (c.output.forward.tls = { ca_file: path.join(dir, 'no-such-ca.pem') }));
    const r = await runCli(['run', '-c', v.file, '--once']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /output\.forward\.tls\.ca_file: .*no-such-ca\.pem does not exist/);
    assert.ok(!existsSync(`${v.state}.lock`));
  });

  test('a lock path that is a directory: one clear line, exit 1', async () => {
    const v = variant('lockdir');
    mkdirSync(`${v.state}.lock`, { recursive: true });
    const r = await runCli(['run', '-c', v.file, '--once']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(oneLine(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /lock/);
    assert.ok(!/\n\s+at /.test(r.stderr), r.stderr);
  });

  test('a state file that is not usable is named, never quoted, and left untouched', async () => {
    const v = variant('corrupt');
    const text = 'abc8Q~0123456789abcdefghijklmnopqrstuvwx is not a state';
    writeFileSync(v.state, text);
    const r = await runCli(['run', '-c', v.file, '--once']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /is not usable: not valid JSON/);
    assert.ok(!r.stderr.includes('abc8Q~'), 'the file content is not quoted');
    assert.equal(readFileSync(v.state, 'utf8'), text);
  });
});

describe('connection problems towards Microsoft are named (not MSAL\'s endpoints_resolution_error)', () => {
  test('refused, untrusted CA (api.ca_file), expired certificate', async () => {
    // Nothing listens: refused, retried max_attempts times, then exit 1.
    const port = await freePort();
    const refused = variant('refused', (c) => {
      c.tenants[0].api_url = `https://127.0.0.1:${port}`;
      c.tenants[0].login_url = `https://127.0.0.1:${port}`;
      c.polling.max_attempts = 1;
    });
    let r = await runCli(['run', '-c', refused.file, '--once'], { timeoutMs: 60_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`connection to 127\\.0\\.0\\.1:${port} refused \\(ECONNREFUSED\\)`));
    assert.doesNotMatch(r.stderr, /endpoints_resolution_error/);
    // The simulator's self-signed CA not given: not trusted, and what to do.
    const untrusted = variant('untrusted', (c) => delete c.api);
    r = await runCli(['run', '-c', untrusted.file, '--once'], { timeoutMs: 60_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the TLS certificate of 127\.0\.0\.1:\d+ is not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)\): .*set api\.ca_file/);
    // An expired server certificate (its CA trusted).
    const tls = await generateServerTls('127.0.0.1', { expired: true });
    const server = https.createServer({ key: tls.keyPem, cert: tls.certPem }, (_req, res) => res.end('{}'));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    try {
      writeFileSync(path.join(dir, 'expired-ca.pem'), tls.caPem);
      const p = (server.address() as net.AddressInfo).port;
      const expired = variant('expired', (c) => {
        c.tenants[0].api_url = `https://127.0.0.1:${p}`;
        c.tenants[0].login_url = `https://127.0.0.1:${p}`;
        c.api = { ca_file: path.join(dir, 'expired-ca.pem') };
      });
      r = await runCli(['run', '-c', expired.file, '--once'], { timeoutMs: 60_000 });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /the TLS certificate of 127\.0\.0\.1:\d+ has expired \(CERT_HAS_EXPIRED\)/);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((res) => server.close(() => res()));
    }
  });
});

describe('a full disk', () => {
  test('a journal write that stops short (ulimit -f) stops the run with exit 1, and the next run loads the state and delivers the rest', async () => {
    const rx = await startForwardReceiver();
    try {
      const v = variant('fulldisk');
      const limited = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn('bash', ['-c', `ulimit -f 8; exec ${process.execPath} --import tsx src/cli.ts run -c ${v.file} --once --forward-port ${rx.port}`], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (code) => resolve({ code, stderr }));
      });
      assert.equal(limited.code, 1, limited.stderr);
      assert.match(limited.stderr, /cannot write state file .*EFBIG/);
      assert.match(limited.stderr, /acknowledged by forward .*, but their checkpoint could not be saved \(.*EFBIG\): they will be sent again by the next run/);
      const next = await runCli(['run', '-c', v.file, '--once', '--forward-port', String(rx.port)]);
      assert.equal(next.code, 0, next.stderr);
      assert.equal(new Set(rx.entries.filter((e) => e.tag.startsWith('cloud.')).map((e) => e.record.Id)).size, 600, 'everything delivered, the journal was not torn');
    } finally {
      await rx.close();
    }
  });
});
