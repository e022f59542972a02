/**
 * Every call towards Microsoft through a real proxy (issue 8, "A real proxy"): Debian's tinyproxy,
 * started here on loopback in the foreground with its config and log in a temp folder, between
 * the collector and the embedded simulator (which serves the token endpoint and the API on one
 * host:port). Its log ("Request (file descriptor N): CONNECT host:port") shows each tunnel opened;
 * the simulator's stats show what reached it. When the proxy refuses, nothing reaches the
 * simulator: no call goes around the proxy, the token call included (Graylog's bug,
 * /work/shared/reference/peers.md pain 18).
 *
 * Without tinyproxy the tests skip with a note; under CI=true they fail (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import tls from 'node:tls';
import { parseConfig, readRegularFile } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { simulatorConfigTree } from '../../src/config/simulator-config.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { generateServerTls } from '../../src/simulator/tls.ts';
import { runOnce } from '../helpers/collector-harness.ts';
import { startForwardReceiver, type ForwardReceiver } from '../helpers/forward-receiver.ts';

const NO_TINYPROXY_NOTE = 'no tinyproxy binary (Debian/Ubuntu: apt-get install tinyproxy); CI installs it through .ci/run';
const STATUS_TAG = 'm365forward.status';

/** tinyproxy on PATH, or where Debian puts it. */
function tinyproxyBinary(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/bin', '/usr/sbin'];
  for (const d of dirs) {
    const f = path.join(d, 'tinyproxy');
    try {
      accessSync(f, constants.X_OK);
      return f;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The binary for `t`; skips `t` without one, except under CI=true, where `t` fails. */
function needTinyproxy(t: TestContext): string | undefined {
  const bin = tinyproxyBinary();
  if (bin) return bin;
  if (/^(true|1|yes)$/i.test(process.env.CI ?? '')) assert.fail(`${NO_TINYPROXY_NOTE} (CI=true, so this is a failure)`);
  t.skip(NO_TINYPROXY_NOTE);
  return undefined;
}

/** A loopback port free a moment ago (tinyproxy binds it itself; a lost race is retried). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

interface Tinyproxy {
  port: number;
  url: string;
  /** Stops it (the log is complete once it has exited) and returns the targets it was asked to CONNECT to. */
  stop(): Promise<string[]>;
}

/**
 * tinyproxy in the foreground (`-d -c FILE`) on 127.0.0.1, allowing CONNECT to `connectPorts`
 * only (ConnectPort; any other port is answered 403), with Basic authentication when `basicAuth`
 * is given. Ready once its log says it accepts connections.
 */
async function startTinyproxy(bin: string, dir: string, opts: { connectPorts: number[]; basicAuth?: { user: string; password: string } }): Promise<Tinyproxy> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const conf = path.join(dir, `tinyproxy-${port}.conf`);
    const log = path.join(dir, `tinyproxy-${port}.log`);
    writeFileSync(
      conf,
      [
        `Port ${port}`,
        'Listen 127.0.0.1',
        `LogFile "${log}"`,
        'LogLevel Info',
        'MaxClients 100',
        'Allow 127.0.0.1',
        ...opts.connectPorts.map((p) => `ConnectPort ${p}`),
        ...(opts.basicAuth ? [`BasicAuth ${opts.basicAuth.user} ${opts.basicAuth.password}`] : []),
        '',
      ].join('\n'),
    );
    const child = spawn(bin, ['-d', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(child);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<void>((r) => child.once('exit', () => (live.delete(child), r())));
    let gone = false;
    void exited.then(() => (gone = true));
    const logText = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
    while (!gone && !logText().includes('Accepting connections')) await new Promise((r) => setTimeout(r, 20));
    if (gone) {
      // Most likely the port was taken between freePort() and tinyproxy's bind: try another.
      if (attempt < 5) continue;
      assert.fail(`tinyproxy did not start: ${stderr.trim()}\n${logText()}`);
    }
    return {
      port,
      url: `http://127.0.0.1:${port}`,
      stop: async () => {
        child.kill('SIGTERM');
        await exited;
        return [...logText().matchAll(/Request \(file descriptor \d+\): CONNECT (\S+) HTTP/g)].map((m) => m[1]!);
      },
    };
  }
}

let rx: ForwardReceiver;
const dirs: string[] = [];
before(async () => {
  rx = await startForwardReceiver({ bufferMaxSize: 1024 * 1024 });
});
after(async () => {
  await rx?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * A simulator and a temp folder; `config(api, env)` builds the config that points at them with the
 * environment `env` only (never the test runner's HTTPS_PROXY), `api` keys added to its `api`
 * section (`ca_file: null` removes the simulator's CA), through the loader as a file would go.
 */
async function setup(): Promise<{ sim: Simulator; simHost: string; simPort: number; dir: string; config: (api?: Record<string, unknown>, env?: Record<string, string>) => Config }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-proxy-'));
  dirs.push(dir);
  const sim = await startSimulator({ seed: 11, records: 300, spanHours: 2, pageSize: 20 });
  const caFile = path.join(dir, 'ca.pem');
  writeFileSync(caFile, sim.caPem);
  const config = (api: Record<string, unknown> = {}, env: Record<string, string> = {}) => {
    const tree = simulatorConfigTree({ ...sim, caFile }, { spanHours: 2, statePath: path.join(dir, 'state.json'), forwardPort: rx.port });
    (tree.output as Record<string, any>).forward.ack_timeout = '5s';
    const apiTree = tree.api as Record<string, unknown>;
    for (const [k, v] of Object.entries(api)) {
      if (v === null) delete apiTree[k];
      else apiTree[k] = v;
    }
    return parseConfig(tree, path.join(dir, 'config.yaml'), {}, { env, readFile: readRegularFile });
  };
  const u = new URL(sim.apiUrl);
  return { sim, simHost: u.host, simPort: Number(u.port), dir, config };
}

function has(msg: string, expected: string): void {
  assert.ok(msg.includes(expected), `missing "${expected}" in:\n${msg}`);
}

const served = (sim: Simulator) => sim.blobs().reduce((n, b) => n + b.records.length, 0);

/**
 * Runs `fn` counting the connections an ordinary https.Agent opens to `port`: every call that does
 * not go through the proxy's tunnel (the tunnel agent is https-proxy-agent's, not an https.Agent).
 * Node's Agent opens each socket with `this.createConnection(options, cb)`, found on the
 * prototype, so wrapping it there sees them all; it is put back afterwards.
 */
async function countDirect(port: number, fn: () => Promise<void>): Promise<number> {
  const proto = https.Agent.prototype as unknown as { createConnection: (...args: unknown[]) => unknown };
  const original = proto.createConnection;
  let direct = 0;
  proto.createConnection = function (this: unknown, ...args: unknown[]) {
    if (Number((args[0] as { port?: unknown } | undefined)?.port) === port) direct++;
    return original.apply(this, args);
  };
  try {
    await fn();
  } finally {
    proto.createConnection = original;
  }
  return direct;
}

/**
 * A run that must succeed: every record delivered, the token and API calls seen by the simulator.
 * Returns how many connections went to it directly, around the proxy.
 */
async function assertCollected(sim: Simulator, config: Config): Promise<number> {
  rx.entries.length = 0;
  const simPort = Number(new URL(sim.apiUrl).port);
  let r: Awaited<ReturnType<typeof runOnce>> | undefined;
  const direct = await countDirect(simPort, async () => {
    r = await runOnce(config);
  });
  assert.ok(r);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.tenantFailures, []);
  assert.equal(r.records, served(sim));
  assert.equal(rx.entries.filter((e) => e.tag !== STATUS_TAG).length, served(sim));
  const seen = sim.stats().byRoute;
  assert.ok((seen.metadata ?? 0) >= 1 && (seen.token ?? 0) >= 1, `the token calls reached the simulator: ${JSON.stringify(seen)}`);
  assert.ok((seen.content ?? 0) >= 1 && (seen.blob ?? 0) >= 1, `the API calls reached the simulator: ${JSON.stringify(seen)}`);
  return direct;
}

/** A run that must fail; returns its error's message. One attempt per call: retrying cannot help here. */
async function failure(config: Config): Promise<string> {
  rx.entries.length = 0;
  let r;
  try {
    r = await runOnce({ ...config, polling: { ...config.polling, maxAttempts: 1 } });
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  assert.fail(`the run did not fail: ${JSON.stringify({ errors: r.errors, failures: r.tenantFailures })}`);
}

/**
 * Every tunnel went to the simulator (its token endpoint and its API share one host:port), and
 * tunnels are kept alive and reused: fewer than the requests, at most the agent's sockets.
 */
function assertTunnelled(connects: string[], simHost: string, sim: Simulator, config: Config): void {
  assert.ok(connects.length >= 1, 'tinyproxy opened tunnels');
  assert.deepEqual([...new Set(connects)], [simHost]);
  const requests = sim.stats().requests;
  assert.ok(connects.length < requests && connects.length <= config.polling.concurrency + 4, `${connects.length} tunnels for ${requests} requests`);
}

/**
 * Starts tinyproxy, runs `fn` with it, and stops it whatever happens; returns what `fn` returned
 * and the targets tinyproxy was asked to CONNECT to.
 */
async function throughTinyproxy<T>(
  t: TestContext,
  dir: string,
  opts: Parameters<typeof startTinyproxy>[2],
  fn: (proxy: Tinyproxy) => Promise<T>,
): Promise<{ result: T; connects: string[] } | undefined> {
  const bin = needTinyproxy(t);
  if (!bin) return undefined;
  const proxy = await startTinyproxy(bin, dir, opts);
  let result: T;
  let connects: string[];
  try {
    result = await fn(proxy);
  } finally {
    connects = await proxy.stop();
  }
  return { result, connects };
}

test('api.proxy: the token call and every API call go through the proxy, the custom CA applied through the tunnel', { timeout: 120_000 }, async (t) => {
  const { sim, simHost, simPort, dir, config } = await setup();
  try {
    const run = await throughTinyproxy(t, dir, { connectPorts: [simPort] }, async (proxy) => {
      // HTTPS_PROXY and NO_PROXY in the environment would send the calls elsewhere: api.proxy overrides them.
      const c = config({ proxy: proxy.url }, { HTTPS_PROXY: 'http://127.0.0.1:9', NO_PROXY: '127.0.0.1' });
      assert.equal(c.api.proxy?.url, proxy.url);
      assert.equal(await assertCollected(sim, c), 0, 'no connection around the proxy');
      return c;
    });
    if (run) assertTunnelled(run.connects, simHost, sim, run.result);
  } finally {
    await sim.close();
  }
});

test('HTTPS_PROXY from the environment, its user info as the credentials of a proxy that asks for them', { timeout: 120_000 }, async (t) => {
  const { sim, simHost, simPort, dir, config } = await setup();
  const password = randomBytes(12).toString('hex');
  try {
    const run = await throughTinyproxy(t, dir, { connectPorts: [simPort], basicAuth: { user: 'm365', password } }, async (proxy) => {
      const c = config({}, { HTTPS_PROXY: `http://m365:${password}@127.0.0.1:${proxy.port}`, https_proxy: 'http://127.0.0.1:9' });
      assert.equal(c.api.proxy?.source, 'HTTPS_PROXY');
      assert.equal(await assertCollected(sim, c), 0, 'no connection around the proxy');
      return c;
    });
    if (run) assertTunnelled(run.connects, simHost, sim, run.result);
  } finally {
    await sim.close();
  }
});

test('NO_PROXY naming the simulator: its calls go direct, and tinyproxy sees none', { timeout: 120_000 }, async (t) => {
  const { sim, simPort, dir, config } = await setup();
  try {
    const run = await throughTinyproxy(t, dir, { connectPorts: [simPort] }, async (proxy) => {
      const direct = await assertCollected(sim, config({}, { https_proxy: proxy.url, no_proxy: `login.example, 127.0.0.1:${simPort}` }));
      assert.ok(direct >= 1, 'the calls went straight to the simulator');
    });
    if (run) assert.deepEqual(run.connects, []);
  } finally {
    await sim.close();
  }
});

test('api.proxy_username and api.proxy_password_env; a wrong password fails the run naming the proxy, never the password', { timeout: 120_000 }, async (t) => {
  const { sim, simHost, simPort, dir, config } = await setup();
  const password = randomBytes(12).toString('hex');
  const wrong = randomBytes(12).toString('hex');
  try {
    const run = await throughTinyproxy(t, dir, { connectPorts: [simPort], basicAuth: { user: 'm365', password } }, async (proxy) => {
      const keys = { proxy: proxy.url, proxy_username: 'm365', proxy_password_env: 'M365_PROXY_PASSWORD' };
      const refused = await failure(config(keys, { M365_PROXY_PASSWORD: wrong }));
      // What survives of the proxy's words in the token call's message (src/support/network-errors.ts
      // keeps 200 characters, node-fetch's own prefix first): the proxy, and that it refused.
      has(refused, `proxy ${proxy.url} (from api.proxy) refused the`);
      assert.ok(!refused.includes(wrong) && !refused.includes(password), refused);
      assert.equal(sim.stats().requests, 0, 'nothing reached the simulator');
      const good = config(keys, { M365_PROXY_PASSWORD: password });
      assert.equal(await assertCollected(sim, good), 0, 'no connection around the proxy');
      return good;
    });
    if (run) assertTunnelled(run.connects, simHost, sim, run.result);
  } finally {
    await sim.close();
  }
});

test('a proxy that refuses the tunnel: the run fails with an error naming the proxy, and the simulator receives nothing', { timeout: 120_000 }, async (t) => {
  const { sim, simHost, simPort, dir, config } = await setup();
  try {
    // CONNECT is allowed to another port only: tinyproxy answers 403 to the simulator's.
    const run = await throughTinyproxy(t, dir, { connectPorts: [simPort === 65535 ? 65534 : simPort + 1] }, async (proxy) => {
      const message = await failure(config({ proxy: proxy.url }));
      has(message, `proxy ${proxy.url} (from api.proxy) refused the`);
      assert.ok(!message.includes('\n'), `one line: ${message}`);
    });
    if (!run) return;
    assert.ok(run.connects.length >= 1 && run.connects.every((c) => c === simHost), `the attempt went to the proxy: ${run.connects}`);
    assert.equal(sim.stats().requests, 0, `nothing reached the simulator: ${JSON.stringify(sim.stats().byRoute)}`);
  } finally {
    await sim.close();
  }
});

test('through the tunnel the TLS of the target is still checked: without api.ca_file the simulator is not trusted', { timeout: 120_000 }, async (t) => {
  const { sim, simHost, simPort, dir, config } = await setup();
  try {
    const run = await throughTinyproxy(t, dir, { connectPorts: [simPort] }, async (proxy) => {
      has(await failure(config({ proxy: proxy.url, ca_file: null })), `the TLS certificate of ${simHost} is not trusted`);
    });
    if (!run) return;
    assert.ok(run.connects.length >= 1, 'the tunnel was opened');
    assert.equal(sim.stats().requests, 0);
  } finally {
    await sim.close();
  }
});

test('an https:// proxy: the connection to the proxy is TLS as well, checked against api.ca_file', { timeout: 120_000 }, async (t) => {
  const { sim, simHost, simPort, dir, config } = await setup();
  // tinyproxy speaks plain HTTP: a TLS front on loopback, with a certificate of its own CA, stands
  // for a proxy that takes TLS. api.ca_file holds both CAs (the front's and the simulator's).
  const frontTls = await generateServerTls('127.0.0.1');
  const cas = path.join(dir, 'cas.pem');
  writeFileSync(cas, `${sim.caPem}\n${frontTls.caPem}\n`);
  let frontConnections = 0;
  try {
    const run = await throughTinyproxy(t, dir, { connectPorts: [simPort] }, async (proxy) => {
      const open = new Set<net.Socket>();
      const front = tls.createServer({ key: frontTls.keyPem, cert: frontTls.certPem }, (s) => {
        frontConnections++;
        const up = net.connect(proxy.port, '127.0.0.1');
        for (const x of [s, up]) {
          open.add(x);
          x.on('error', () => {});
          x.on('close', () => (open.delete(x), s.destroy(), up.destroy()));
        }
        s.pipe(up).pipe(s);
      });
      await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
      try {
        const c = config({ proxy: `https://127.0.0.1:${(front.address() as net.AddressInfo).port}`, ca_file: cas });
        assert.equal(await assertCollected(sim, c), 0, 'no connection around the proxy');
        return c;
      } finally {
        for (const x of open) x.destroy();
        await new Promise((r) => front.close(r));
      }
    });
    if (!run) return;
    assert.ok(frontConnections >= 1, 'the calls came to the TLS front');
    assertTunnelled(run.connects, simHost, sim, run.result);
  } finally {
    await sim.close();
  }
});
