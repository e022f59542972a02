/**
 * The real Fluent Bit for tests: find the binary, and run it with a generated classic config in a
 * temp folder, between a `forward` input the test writes to and a `forward` output to a receiver
 * of ours (test/helpers/forward-receiver.ts, exact decoding), so a test sees the msgpack Fluent Bit
 * stored: tag, EventTime with nanoseconds, record.
 *
 * The binary: $FLUENT_BIT, else <repo>/../shared/tools/fluent-bit/fluent-bit (CI has ../shared, a
 * user's clone does not), else `fluent-bit` on PATH. Tests call needFluentBit(t): it skips without
 * a binary, and fails under CI=true.
 *
 * Measured with Fluent Bit 5.1.1 (../shared/tools/fluent-bit, Debian 12, 2 CPUs), through this
 * harness and test/integration/fluent-bit-harness.test.ts unless said otherwise:
 * - Startup: the forward input accepts connections 23-55 ms after spawn (TLS and the Lua filter at
 *   the slow end). startFluentBit polls a connect every 10 ms instead of sleeping, and fails with
 *   Fluent Bit's log if it exits first or is not up within 20 s.
 * - out_forward's wire form: Forward mode, `[tag, [[EventTime, record], ...], options?]`, never
 *   plain PackedForward. With no filter the entries are `[time, record]`; once a filter (Lua) has
 *   touched the chunk they arrive in Fluent Bit's own form `[[time, metadata], record]`
 *   (retain_metadata_in_forward_mode, default on). Without Send_options/Require_ack_response there
 *   is no options map at all (no `chunk`, no ack awaited); `Send_options true` adds `{size,
 *   fluent_signal}`, `Require_ack_response true` adds `chunk` and waits for our ack; `compress gzip`
 *   switches to CompressedPackedForward. The harness sets Require_ack_response, so a record counts
 *   as delivered only once our receiver acked it; the receiver reads every mode and entry form.
 *   Without a filter the record bytes are forwarded as they came in (a 0xd3 int64 stays 0xd3).
 * - Latency: records leave only at the engine's flush tick. From a frame's write to its arrival at
 *   the receiver: 70-200 ms with `Flush 0.2` (the harness's default), about 1 s with Fluent Bit's
 *   default `Flush 1` (a manual experiment, 5 records each). Retries wait `scheduler.base` to
 *   `scheduler.cap` seconds (defaults 5 and 2000): the harness sets 1 and 2 so an outage of the
 *   receiver or a restart heals quickly.
 * - Shutdown: SIGTERM normally ends Fluent Bit within a second (`Grace 1` here, default 5 s), but
 *   with a chunk waiting for an ack that never comes (Require_ack_response, receiver not acking)
 *   Fluent Bit 5.1.1 was still running 10 minutes after SIGTERM (a manual experiment; the restart
 *   test in fluent-bit-harness.test.ts takes this path too): stop() sends SIGKILL after a grace.
 * - `-D`/`--dry-run`: reads the configuration (and every @INCLUDE; a missing one fails), checks
 *   every property name against the plugin's config map (an unknown key fails, with the list of
 *   allowed ones), runs the filters' pre-run step (the Lua filter loads and compiles its script: a
 *   missing script fails), prints "configuration test is successful" and exits 0. It does not
 *   bind ports, open TLS certificate files (a missing tls.crt_file passes), create storage.path,
 *   or check values (`Buffer_Max_Size abc` passes). Manual experiments with one-section configs.
 *
 * Every Fluent Bit started here is killed when the test process exits, even after a failure
 * (a process 'exit' and SIGINT/SIGTERM guard), and its temp folder is removed.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { generateClientCertificate, generateServerTls } from '../../src/simulator/tls.ts';
import { startForwardReceiver, type ForwardReceiver } from './forward-receiver.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');

/** Where CI keeps the real Fluent Bit, relative to the repository. */
export const SHARED_FLUENT_BIT = path.resolve(repoRoot, '..', 'shared', 'tools', 'fluent-bit', 'fluent-bit');

/** The note a test skips with (or, under CI=true, fails with) when there is no Fluent Bit binary. */
export const NO_FLUENT_BIT_NOTE =
  'no Fluent Bit binary: set FLUENT_BIT or put ../shared/tools/fluent-bit/fluent-bit in place; CI runs these tests';

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The Fluent Bit binary to test with: $FLUENT_BIT (which must then be an executable file: a wrong
 * setting throws rather than silently skipping), else ../shared/tools/fluent-bit/fluent-bit beside
 * the repository, else `fluent-bit` on PATH, else undefined.
 */
export function fluentBitBinary(): string | undefined {
  const fromEnv = process.env.FLUENT_BIT;
  if (fromEnv !== undefined && fromEnv !== '') {
    const p = path.resolve(fromEnv);
    if (!isExecutableFile(p)) throw new Error(`FLUENT_BIT=${fromEnv} is not an executable file: point it at a fluent-bit binary, or unset it`);
    return p;
  }
  if (isExecutableFile(SHARED_FLUENT_BIT)) return SHARED_FLUENT_BIT;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutableFile(path.join(dir, 'fluent-bit'))) return path.join(dir, 'fluent-bit');
  }
  return undefined;
}

/** CI=true (or 1/yes): tests that need a tool fail instead of skipping. */
function inCi(): boolean {
  return /^(true|1|yes)$/i.test(process.env.CI ?? '');
}

/**
 * The Fluent Bit binary for test `t`. Without one it skips `t` with {@link NO_FLUENT_BIT_NOTE} and
 * returns undefined (the test must then return), except under CI=true, where it fails `t`.
 */
export function needFluentBit(t: TestContext): string | undefined {
  const bin = fluentBitBinary();
  if (bin) return bin;
  if (inCi()) assert.fail(`${NO_FLUENT_BIT_NOTE} (CI=true, so this is a failure)`);
  t.skip(NO_FLUENT_BIT_NOTE);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Cleanup guard: no Fluent Bit outlives the test process, even when a test throws.

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let guardInstalled = false;

function cleanupNow(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}

function installGuard(): void {
  if (guardInstalled) return;
  guardInstalled = true;
  process.on('exit', cleanupNow);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    // Clean up, then die of the same signal as we would have without this listener.
    process.once(signal, () => {
      cleanupNow();
      process.kill(process.pid, signal);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// The configuration.

/** Options of {@link startFluentBit}. Sizes are Fluent Bit size strings ('6M') or byte counts. */
export interface FluentBitOptions {
  /** The binary; default {@link fluentBitBinary}(). */
  binary?: string;
  /** 'tcp' (default): a free loopback port. 'unix': `unix_path` in the temp folder. */
  listen?: 'tcp' | 'unix';
  /**
   * TLS on the forward input (TCP only) with a server certificate generated now (SANs localhost,
   * 127.0.0.1; trust `tls.caPem`). `verifyClientCert`: also require a client certificate, one the
   * harness generates (returned as `tls.clientCertPem`/`clientKeyPem`; its own trust anchor).
   */
  tls?: boolean | { verifyClientCert?: boolean };
  bufferChunkSize?: string | number;
  bufferMaxSize?: string | number;
  /** The input's storage.type; 'filesystem' puts storage.path in the temp folder. Default memory. */
  storage?: 'memory' | 'filesystem';
  /** A [FILTER] lua block; `enableFlbNull` defaults to on, as in plugin/fluent-bit/filter-devo.conf. */
  lua?: { script: string; call: string; match?: string; enableFlbNull?: boolean };
  /** [SERVICE] Flush in seconds; default 0.2 (records leave only at flush ticks). */
  flush?: number;
  /** out_forward Require_ack_response (default true: delivered means acked by our receiver). */
  requireAck?: boolean;
  /** Log_Level; default info. */
  logLevel?: 'off' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  /** Extra [SERVICE] / [INPUT] / [OUTPUT] properties, appended after the harness's own. */
  service?: Record<string, string>;
  input?: Record<string, string>;
  output?: Record<string, string>;
  /** How long to wait for the input to accept connections; default 20 s. */
  startTimeoutMs?: number;
  /** stop()/restart(): how long after SIGTERM before SIGKILL; default 5 s. */
  stopGraceMs?: number;
}

/** A running Fluent Bit with its receiver; see {@link startFluentBit}. */
export interface FluentBit {
  binary: string;
  /** The forward input's TCP address (not with listen 'unix'). */
  host?: '127.0.0.1';
  port?: number;
  /** The forward input's unix socket (listen 'unix'). */
  unixPath?: string;
  /** With TLS: the CA to trust, and the client certificate when verifyClientCert is on. */
  tls?: { caPem: string; clientCertPem?: string; clientKeyPem?: string };
  /** Where every record Fluent Bit delivers arrives (exactIntegers: bigints, rawRecord). */
  receiver: ForwardReceiver;
  /** The temp folder (config, certificates, storage, socket); removed by stop(). */
  dir: string;
  /** The generated classic configuration. */
  config: string;
  /** The running process's pid, or undefined between kill() and restart(). */
  pid(): number | undefined;
  /** Fluent Bit's stdout and stderr so far (the last 256 KiB), across restarts. */
  logs(): string;
  /** Sends `signal` (default SIGKILL) and waits until Fluent Bit has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops Fluent Bit (SIGTERM, SIGKILL after the grace) and starts it again: same config, port or socket, storage and receiver. */
  restart(): Promise<void>;
  /** Stops Fluent Bit and the receiver and removes the temp folder. Safe to call twice. */
  stop(): Promise<void>;
}

const LOG_LIMIT = 256 * 1024;

/** A free loopback TCP port: listen on port 0, note the port, close. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Classic-format section text; keys are written in order, values must not hold newlines. */
function section(name: string, entries: Array<[string, string | number | undefined]>): string {
  const lines = entries.filter(([, v]) => v !== undefined).map(([k, v]) => {
    assert.ok(!/[\r\n]/.test(String(v)), `config value for ${k} holds a newline`);
    return `    ${k.padEnd(24)} ${v}`;
  });
  return `[${name}]\n${lines.join('\n')}\n`;
}

/**
 * Starts the real Fluent Bit: forward input (TCP, unix socket or TLS) → optional Lua filter →
 * forward output (Match *, Retry_Limit no_limits, acks) → a receiver started here. Resolves once
 * the input accepts connections. Always stop() it (in `after`/`finally`).
 */
export async function startFluentBit(opts: FluentBitOptions = {}): Promise<FluentBit> {
  const binary = opts.binary ?? fluentBitBinary();
  if (!binary) throw new Error(NO_FLUENT_BIT_NOTE);
  if (opts.listen === 'unix' && opts.tls) throw new Error('startFluentBit: tls needs listen tcp');
  if (opts.lua && !existsSync(opts.lua.script)) throw new Error(`startFluentBit: Lua script ${opts.lua.script} does not exist`);
  installGuard();

  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365fb-'));
  liveDirs.add(dir);
  let receiver: ForwardReceiver | undefined;
  try {
    receiver = await startForwardReceiver({ exactIntegers: true });
    const unixPath = opts.listen === 'unix' ? path.join(dir, 'forward.sock') : undefined;
    const port = unixPath ? undefined : await freePort();

    let tlsInfo: FluentBit['tls'];
    const tlsEntries: Array<[string, string | undefined]> = [];
    if (opts.tls) {
      const server = await generateServerTls('127.0.0.1');
      const tlsDir = path.join(dir, 'tls');
      mkdirSync(tlsDir, { mode: 0o700 });
      writeFileSync(path.join(tlsDir, 'server.crt'), server.certPem);
      writeFileSync(path.join(tlsDir, 'server.key'), server.keyPem, { mode: 0o600 });
      tlsInfo = { caPem: server.caPem };
      tlsEntries.push(['tls', 'on'], ['tls.crt_file', path.join(tlsDir, 'server.crt')], ['tls.key_file', path.join(tlsDir, 'server.key')]);
      if (typeof opts.tls === 'object' && opts.tls.verifyClientCert) {
        const client = await generateClientCertificate({ commonName: 'm365-forward test client' });
        writeFileSync(path.join(tlsDir, 'client-ca.crt'), client.certPem);
        tlsInfo.clientCertPem = client.certPem;
        tlsInfo.clientKeyPem = client.keyPem;
        tlsEntries.push(['tls.verify_client_cert', 'on'], ['tls.ca_file', path.join(tlsDir, 'client-ca.crt')]);
      }
    }

    const storage = opts.storage ?? 'memory';
    const config = [
      section('SERVICE', [
        ['Flush', opts.flush ?? 0.2],
        ['Grace', 1],
        ['Log_Level', opts.logLevel ?? 'info'],
        ['scheduler.base', 1],
        ['scheduler.cap', 2],
        ['storage.path', storage === 'filesystem' ? path.join(dir, 'storage') : undefined],
        ...Object.entries(opts.service ?? {}),
      ]),
      section('INPUT', [
        ['Name', 'forward'],
        ['Listen', unixPath ? undefined : '127.0.0.1'],
        ['Port', port],
        ['unix_path', unixPath],
        ['Buffer_Chunk_Size', opts.bufferChunkSize],
        ['Buffer_Max_Size', opts.bufferMaxSize],
        ['storage.type', storage],
        ...tlsEntries,
        ...Object.entries(opts.input ?? {}),
      ]),
      opts.lua
        ? section('FILTER', [
            ['Name', 'lua'],
            ['Match', opts.lua.match ?? '*'],
            ['script', opts.lua.script],
            ['call', opts.lua.call],
            ['enable_flb_null', opts.lua.enableFlbNull === false ? 'off' : 'on'],
          ])
        : '',
      section('OUTPUT', [
        ['Name', 'forward'],
        ['Match', '*'],
        ['Host', '127.0.0.1'],
        ['Port', receiver.port],
        ['Require_ack_response', opts.requireAck === false ? 'false' : 'true'],
        ['Retry_Limit', 'no_limits'],
        ...Object.entries(opts.output ?? {}),
      ]),
    ]
      .filter((s) => s !== '')
      .join('\n');
    const configPath = path.join(dir, 'fluent-bit.conf');
    writeFileSync(configPath, config);

    const running = new FluentBitProcess(binary, configPath, dir, unixPath ? { path: unixPath } : { port: port!, host: '127.0.0.1' }, opts);
    await running.start();
    const rx = receiver;
    let stopped = false;
    return {
      binary,
      ...(port !== undefined ? { host: '127.0.0.1' as const, port } : {}),
      ...(unixPath !== undefined ? { unixPath } : {}),
      ...(tlsInfo ? { tls: tlsInfo } : {}),
      receiver: rx,
      dir,
      config,
      pid: () => running.pid(),
      logs: () => running.logs(),
      kill: (signal: NodeJS.Signals = 'SIGKILL') => running.kill(signal),
      async restart() {
        await running.stop();
        running.note('--- restart ---');
        await running.start();
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        try {
          await running.stop();
        } finally {
          await rx.close();
          rmSync(dir, { recursive: true, force: true });
          liveDirs.delete(dir);
        }
      },
    };
  } catch (e) {
    await receiver?.close();
    rmSync(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
    throw e;
  }
}

/** One Fluent Bit process at a time for a config: start, wait until it listens, stop, keep the logs. */
class FluentBitProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private log = '';

  constructor(
    private readonly binary: string,
    private readonly configPath: string,
    private readonly dir: string,
    private readonly address: { host: string; port: number } | { path: string },
    private readonly opts: FluentBitOptions,
  ) {}

  note(line: string): void {
    this.append(`${line}\n`);
  }

  private append(text: string): void {
    this.log += text;
    if (this.log.length > 2 * LOG_LIMIT) this.log = this.log.slice(-LOG_LIMIT);
  }

  logs(): string {
    return this.log.length > LOG_LIMIT ? `[earlier output dropped]\n${this.log.slice(-LOG_LIMIT)}` : this.log;
  }

  pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    const child = spawn(this.binary, ['-c', this.configPath], { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    liveChildren.add(child);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => this.append(d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => this.append(d));
    let exitCode: string | undefined;
    this.exited = new Promise<void>((resolve) => {
      child.once('error', (e) => {
        exitCode = `could not start: ${e.message}`;
        liveChildren.delete(child);
        if (this.child === child) this.child = undefined;
        resolve();
      });
      child.once('exit', (code, signal) => {
        exitCode = signal ? `killed by ${signal}` : `exit code ${code}`;
        liveChildren.delete(child);
        if (this.child === child) this.child = undefined;
        resolve();
      });
    });
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 20_000);
    for (;;) {
      if (exitCode !== undefined) {
        throw new Error(`Fluent Bit (${this.binary}) stopped before its forward input listened (${exitCode}):\n${this.logs()}`);
      }
      if (await canConnect(this.address)) return;
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`Fluent Bit's forward input did not accept connections within ${this.opts.startTimeoutMs ?? 20_000} ms:\n${this.logs()}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Sends `signal` and waits for the exit (for signals that end Fluent Bit). */
  async kill(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill(signal);
    await this.exited;
  }

  /** SIGTERM, then SIGKILL after the grace; resolves once the process is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.opts.stopGraceMs ?? 5_000);
    });
    const late = await Promise.race([this.exited.then(() => 'exited' as const), grace]);
    clearTimeout(timer);
    if (late === 'late') {
      this.note(`--- no exit ${this.opts.stopGraceMs ?? 5_000} ms after SIGTERM: SIGKILL ---`);
      child.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** One connect attempt (TCP or unix socket); true if it was accepted. */
function canConnect(address: { host: string; port: number } | { path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = 'path' in address ? net.connect(address.path) : net.connect(address.port, address.host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * Polls `condition` every 20 ms until it holds; fails after `timeoutMs` (default 15 s) with `what`
 * and Fluent Bit's log. For waiting on records at the receiver; never for asserting timings.
 */
export async function waitFor(condition: () => boolean, what: string, fb?: Pick<FluentBit, 'logs'>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}${fb ? `\nFluent Bit's log:\n${fb.logs()}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Records into all inputs and records flushed by all outputs, from Fluent Bit's /api/v1/metrics snapshot. */
export async function recordCounts(httpPort: number): Promise<{ in: number; out: number } | undefined> {
  let res: Response;
  let text: string;
  try {
    res = await fetch(`http://127.0.0.1:${httpPort}/api/v1/metrics`);
    text = await res.text();
  } catch {
    return undefined; // the HTTP server is not listening yet
  }
  // Right after start the endpoint can answer 200 with an empty body (no snapshot taken yet; seen with 5.1.1).
  if (!res.ok || text.trim() === '') return undefined;
  const m = JSON.parse(text) as { input: Record<string, { records: number }>; output: Record<string, { proc_records: number }> };
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  return { in: sum(Object.values(m.input).map((i) => i.records)), out: sum(Object.values(m.output).map((o) => o.proc_records)) };
}
