/**
 * The proxy decisions (src/support/proxy.ts) and the `api.proxy*` config keys (src/config/load.ts):
 * which variable wins, every NO_PROXY form, api.proxy over the environment, and problems that name
 * their key without quoting a password. The last tests drive the agent against loopback stand-ins
 * for a proxy (a listener that records the CONNECT and refuses it, one that never answers); the
 * real proxy, tinyproxy, is in test/integration/proxy.test.ts.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { inspect } from 'node:util';
import { parseConfig, type LoadEnv } from '../../src/config/load.ts';
import { Secret, type Config, type ProxyConfig } from '../../src/config/schema.ts';
import { CollectorError } from '../../src/errors.ts';
import { createHttpsAgent } from '../../src/polling/tenant-runtime.ts';
import { describeNetworkError } from '../../src/support/network-errors.ts';
import {
  ProxyError,
  createProxyRoute,
  noProxyMatcher,
  parseNoProxy,
  parseNoProxyEntry,
  parseProxyUrl,
  proxyEnvironment,
  proxyFor,
  refusalMessage,
} from '../../src/support/proxy.ts';

const T = '11111111-2222-3333-4444-555555555555';
const C = '66666666-7777-8888-9999-000000000000';
const tenant = { tenant_id: T, client_id: C, client_secret: 'x' };
/** A LoadEnv with these variables and these files (matched by the end of their path). */
const io = (vars: Record<string, string> = {}, files: Record<string, string> = {}): LoadEnv => ({
  env: vars,
  readFile: (f) => {
    const hit = Object.entries(files).find(([k]) => f.endsWith(k));
    if (!hit) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
    return hit[1];
  },
});
const load = (api: Record<string, unknown> | undefined, env = io()): Config =>
  parseConfig({ tenants: [tenant], ...(api ? { api } : {}) }, '/etc/m365/config.yaml', {}, env);
function problems(api: Record<string, unknown> | undefined, env = io()): string {
  try {
    load(api, env);
  } catch (err) {
    assert.ok(err instanceof CollectorError && err.code === 'CONFIG_INVALID', inspect(err));
    return err.message;
  }
  assert.fail('config was accepted');
}
function has(msg: string, ...expected: string[]): void {
  for (const e of expected) assert.ok(msg.includes(e), `missing "${e}" in:\n${msg}`);
}
function lacks(msg: string, ...secrets: string[]): void {
  for (const s of secrets) assert.ok(!msg.includes(s), `"${s}" must not appear in:\n${msg}`);
}
const proxy = (extra: Partial<ProxyConfig> = {}): ProxyConfig => ({ url: 'http://proxy.corp:3128', source: 'api.proxy', noProxy: [], ...extra });
const via = (p: ProxyConfig, url: string) => (proxyFor(p, url) ? 'proxy' : 'direct');
/** The normalised form of one NO_PROXY entry that must parse. */
function entry(raw: string): string {
  const r = parseNoProxyEntry(raw);
  assert.ok('entry' in r, `${raw}: ${JSON.stringify(r)}`);
  return r.entry;
}

describe('the environment', () => {
  test('HTTPS_PROXY wins over https_proxy; a blank one counts as unset; HTTP_PROXY and ALL_PROXY are not read', () => {
    assert.deepEqual(proxyEnvironment({ HTTPS_PROXY: 'http://upper:1', https_proxy: 'http://lower:2' }).proxy, { name: 'HTTPS_PROXY', value: 'http://upper:1' });
    assert.deepEqual(proxyEnvironment({ https_proxy: 'http://lower:2' }).proxy, { name: 'https_proxy', value: 'http://lower:2' });
    assert.deepEqual(proxyEnvironment({ HTTPS_PROXY: '  ', https_proxy: 'http://lower:2' }).proxy, { name: 'https_proxy', value: 'http://lower:2' });
    assert.equal(proxyEnvironment({ HTTP_PROXY: 'http://a:1', http_proxy: 'http://b:1', ALL_PROXY: 'socks5://c:1' }).proxy, undefined);
    assert.deepEqual(proxyEnvironment({ NO_PROXY: 'a', no_proxy: 'b' }).noProxy, { name: 'NO_PROXY', value: 'a' });
    assert.deepEqual(proxyEnvironment({ no_proxy: 'b' }).noProxy, { name: 'no_proxy', value: 'b' });
  });

  test('the config takes the proxy and its exceptions from the environment when api.proxy is not set', () => {
    assert.equal(load(undefined).api.proxy, undefined, 'no variable: direct');
    const p = load(undefined, io({ https_proxy: 'http://lower.corp:8080', HTTPS_PROXY: 'http://proxy.corp:3128', NO_PROXY: '.internal, Login.Example.com:443' })).api.proxy;
    assert.deepEqual(p, { url: 'http://proxy.corp:3128', source: 'HTTPS_PROXY', noProxy: ['.internal', 'login.example.com:443'], noProxySource: 'NO_PROXY' });
    // curl's reading of a value without a scheme; the default port written out.
    assert.equal(load(undefined, io({ https_proxy: 'proxy.corp:3128' })).api.proxy?.url, 'http://proxy.corp:3128');
    assert.equal(load(undefined, io({ HTTPS_PROXY: 'http://proxy.corp' })).api.proxy?.url, 'http://proxy.corp:80');
    assert.equal(load(undefined, io({ HTTPS_PROXY: 'https://proxy.corp' })).api.proxy?.url, 'https://proxy.corp:443');
    // NO_PROXY alone sets no proxy.
    assert.equal(load(undefined, io({ NO_PROXY: '*' })).api.proxy, undefined);
  });

  test("HTTPS_PROXY's user info becomes the credentials (decoded), kept out of the URL and out of any printout", () => {
    const p = load(undefined, io({ HTTPS_PROXY: 'http://svc%40corp:p%3Ass%20w0rd@proxy.corp:3128' })).api.proxy!;
    assert.equal(p.url, 'http://proxy.corp:3128');
    assert.equal(p.username, 'svc@corp');
    assert.equal(p.password?.reveal(), 'p:ss w0rd');
    lacks(inspect(p, { depth: 5 }) + JSON.stringify(p), 'p:ss w0rd', 'p%3Ass');
  });

  test('NO_PROXY entries the collector does not understand are left out, the others kept', () => {
    assert.deepEqual(parseNoProxy('http://a.b, good.example, a/b, [::1]:8443,,'), { entries: ['good.example', '[::1]:8443'], ignored: 2 });
    const p = load(undefined, io({ HTTPS_PROXY: 'http://proxy.corp:3128', no_proxy: 'http://nope good.example' })).api.proxy!;
    assert.deepEqual(p.noProxy, ['good.example']);
  });
});

describe('NO_PROXY forms', () => {
  test('* sends everything direct', () => {
    const p = proxy({ noProxy: ['*'] });
    assert.equal(via(p, 'https://manage.office.com'), 'direct');
    assert.equal(via(p, 'https://10.0.0.1:8443'), 'direct');
  });

  test('a name covers itself and the names under it, never a longer name that only ends the same', () => {
    const p = proxy({ noProxy: ['example.com'] });
    assert.equal(via(p, 'https://example.com'), 'direct');
    assert.equal(via(p, 'https://login.example.com'), 'direct');
    assert.equal(via(p, 'https://a.b.example.com:8443'), 'direct');
    assert.equal(via(p, 'https://badexample.com'), 'proxy');
    assert.equal(via(p, 'https://example.com.evil.net'), 'proxy');
  });

  test('.suffix and *.suffix cover only the names under it', () => {
    for (const raw of ['.example.com', '*.example.com']) {
      const p = proxy({ noProxy: [entry(raw)] });
      assert.equal(via(p, 'https://login.example.com'), 'direct', raw);
      assert.equal(via(p, 'https://example.com'), 'proxy', raw);
      assert.equal(via(p, 'https://badexample.com'), 'proxy', raw);
    }
  });

  test('host:port covers that port only (443 when the URL has none)', () => {
    const p = proxy({ noProxy: ['login.example.com:443', '[::1]:8443', '10.1.2.3:8443'] });
    assert.equal(via(p, 'https://login.example.com'), 'direct');
    assert.equal(via(p, 'https://login.example.com:8443'), 'proxy');
    assert.equal(via(p, 'https://[::1]:8443'), 'direct');
    assert.equal(via(p, 'https://[::1]'), 'proxy');
    assert.equal(via(p, 'https://10.1.2.3:8443'), 'direct');
    assert.equal(via(p, 'https://10.1.2.3'), 'proxy');
  });

  test('IP addresses and CIDR blocks match hosts written as addresses, in any spelling; names are not resolved', () => {
    const p = proxy({ noProxy: parseNoProxy('127.0.0.1 ::1 10.0.0.0/8 fd00::/8').entries });
    assert.equal(via(p, 'https://127.0.0.1:4443'), 'direct');
    assert.equal(via(p, 'https://127.0.0.2'), 'proxy');
    assert.equal(via(p, 'https://[0:0:0:0:0:0:0:1]'), 'direct');
    assert.equal(via(p, 'https://10.200.3.4'), 'direct');
    assert.equal(via(p, 'https://11.0.0.1'), 'proxy');
    assert.equal(via(p, 'https://[fd12:3456::1]'), 'direct');
    assert.equal(via(p, 'https://localhost'), 'proxy', 'localhost is a name, not 127.0.0.1');
  });

  test('names compare without case and without a trailing dot', () => {
    const p = proxy({ noProxy: [entry('Manage.Office.COM.')] });
    assert.equal(via(p, 'https://MANAGE.office.com'), 'direct');
    assert.equal(via(p, 'https://manage.office.com./'), 'direct');
  });

  test('the token host and the API host are decided apart', () => {
    const p = proxy({ noProxy: ['login.microsoftonline.com'] });
    assert.equal(via(p, 'https://login.microsoftonline.com'), 'direct');
    assert.equal(via(p, 'https://manage.office.com'), 'proxy');
    const route = createProxyRoute(p);
    assert.equal(route('manage.office.com', 443), p);
    assert.equal(route('login.microsoftonline.com', 443), undefined);
    assert.equal(createProxyRoute(undefined)('manage.office.com', 443), undefined, 'no proxy: direct');
  });

  test('entries are written back normalised', () => {
    assert.deepEqual(['*', '*.Corp.Example', '.corp.example', 'HOST:0443', '[::1]', '[::1]:443', '::1', '10.0.0.0/8', 'a.example.'].map(entry), [
      '*', '.corp.example', '.corp.example', 'host:443', '::1', '[::1]:443', '::1', '10.0.0.0/8', 'a.example',
    ]);
  });

  test('entries that are not hosts are refused one by one', () => {
    for (const bad of ['http://proxy', 'a/b', 'host:0', 'host:70000', '[zz]:443', 'user@host', '-bad-.com', '10.0.0.0/33']) {
      assert.ok('problem' in parseNoProxyEntry(bad), bad);
    }
    // A matcher given a bad entry skips it rather than matching everything.
    assert.equal(noProxyMatcher(['a/b'])('a', 443), false);
  });
});

describe('api.proxy', () => {
  test('overrides HTTPS_PROXY and NO_PROXY alike; api.no_proxy (list or string) is its exception list', () => {
    const env = io({ HTTPS_PROXY: 'http://env.corp:1', NO_PROXY: '*' });
    assert.deepEqual(load({ proxy: 'http://proxy.corp:3128' }, env).api.proxy, { url: 'http://proxy.corp:3128', source: 'api.proxy', noProxy: [] });
    const listed = load({ proxy: 'https://proxy.corp', no_proxy: ['login.microsoftonline.com', '*.internal'] }, env).api.proxy!;
    assert.deepEqual([listed.url, listed.noProxy, listed.noProxySource], ['https://proxy.corp:443', ['login.microsoftonline.com', '.internal'], 'api.no_proxy']);
    assert.deepEqual(load({ proxy: 'http://proxy.corp:3128', no_proxy: 'a.example, b.example' }, env).api.proxy?.noProxy, ['a.example', 'b.example']);
    assert.equal(load({ proxy: 'none' }, env).api.proxy, undefined, 'none: direct whatever the environment says');
  });

  test('credentials come from api.proxy_username and a password variable or file, held as a Secret', () => {
    const fromEnv = load({ proxy: 'http://proxy.corp:3128', proxy_username: 'svc-m365', proxy_password_env: 'PROXY_PASSWORD' }, io({ PROXY_PASSWORD: 'Hunter2-env' })).api.proxy!;
    assert.equal(fromEnv.username, 'svc-m365');
    assert.ok(fromEnv.password instanceof Secret);
    assert.equal(fromEnv.password.reveal(), 'Hunter2-env');
    const fromFile = load({ proxy: 'http://proxy.corp:3128', proxy_username: 'svc-m365', proxy_password_file: './proxy.secret' }, io({}, { 'proxy.secret': 'Hunter2-file\n' })).api.proxy!;
    assert.equal(fromFile.password?.reveal(), 'Hunter2-file');
    lacks(inspect(fromFile, { depth: 5 }) + JSON.stringify(fromFile), 'Hunter2-file');
    assert.equal(load({ proxy: 'http://proxy.corp:3128', proxy_username: 'svc' }).api.proxy?.password, undefined, 'a user alone is allowed');
  });

  test('a URL the collector cannot use is refused, naming the key and never quoting credentials', () => {
    has(problems({ proxy: 'socks5://proxy.corp:1080' }), 'api.proxy: must be an http:// or https:// proxy URL', 'got a socks5:// URL');
    has(problems({ proxy: 'proxy.corp:3128' }), 'api.proxy: must be a URL like http://proxy.example:3128, starting with http:// or https://');
    has(problems({ proxy: 'not a url' }), 'api.proxy: must be a URL like http://proxy.example:3128, got a value of 9 characters that is not a URL');
    has(problems({ proxy: 'http://proxy.corp:3128/path?x=1' }), 'api.proxy: must be a bare scheme://host:port without a path or query, got http://proxy.corp:3128 followed by more');
    has(problems({ proxy: 42 }), 'api.proxy: must be a proxy URL like http://proxy.example:3128, or none, got number 42');
    has(problems({ proxy: '' }), 'api.proxy: must be a proxy URL');
    const withPassword = problems({ proxy: 'http://svc:Hunter2-inline@proxy.corp:3128' });
    has(withPassword, 'api.proxy: must not hold a user or password (set api.proxy_username, and api.proxy_password_env or api.proxy_password_file)');
    lacks(withPassword, 'Hunter2-inline', 'svc:');
    // A secret pasted as the host is not echoed either.
    lacks(problems({ proxy: 'http://Xy7Q~abcdefghijklmnop1234567890ab' }), 'Xy7Q', 'abcdefghijklmnop');
  });

  test('a bad HTTPS_PROXY is a config problem naming the variable, without its password', () => {
    const msg = problems(undefined, io({ HTTPS_PROXY: 'socks5://svc:Hunter2-env@proxy.corp:1080' }));
    has(msg, 'environment variable HTTPS_PROXY: must be an http:// or https:// proxy URL', 'or set api.proxy in the config (none: no proxy)');
    lacks(msg, 'Hunter2-env');
    const path = problems(undefined, io({ https_proxy: 'http://svc:Hunter2-env@proxy.corp:3128/x' }));
    has(path, 'environment variable https_proxy: must be a bare scheme://host:port');
    lacks(path, 'Hunter2-env');
    // A bad HTTPS_PROXY does not matter once api.proxy says what to do.
    assert.equal(load({ proxy: 'none' }, io({ HTTPS_PROXY: 'socks5://proxy.corp:1080' })).api.proxy, undefined);
  });

  test('the credential and exception keys are checked, and refused without an api.proxy to apply to', () => {
    const base = { proxy: 'http://proxy.corp:3128' };
    has(problems({ proxy_username: 'svc', no_proxy: ['a.example'] }), 'api.proxy_username: applies to api.proxy only', 'api.no_proxy: applies to api.proxy only');
    has(problems({ proxy: 'none', proxy_password_env: 'P' }), 'api.proxy_password_env: has no use with api.proxy: none');
    has(problems({ ...base, proxy_password_env: 'PROXY_PASSWORD' }, io({ PROXY_PASSWORD: 'x' })), 'api: has a proxy password but no api.proxy_username');
    has(problems({ ...base, proxy_username: 'svc', proxy_password_env: 'PROXY_PASSWORD' }), 'api.proxy_password_env: environment variable PROXY_PASSWORD is not set or empty');
    const pasted = problems({ ...base, proxy_username: 'svc', proxy_password_env: 'Hunter2Hunter2Hunter2x' });
    has(pasted, 'api.proxy_password_env: must be the name of an environment variable');
    lacks(pasted, 'Hunter2Hunter2Hunter2x');
    has(problems({ ...base, proxy_username: 'svc', proxy_password_env: 'A', proxy_password_file: './p' }), 'api: has both proxy_password_env and proxy_password_file');
    has(problems({ ...base, proxy_username: 'svc', proxy_password_file: './proxy.secret' }), 'api.proxy_password_file: /etc/m365/proxy.secret does not exist');
    has(problems({ ...base, proxy_username: 'svc', proxy_password_file: './proxy.secret' }, io({}, { 'proxy.secret': 'a\nb\n' })), 'holds more than one line');
    const colon = problems({ ...base, proxy_username: 'svc:Hunter2' });
    has(colon, "api.proxy_username: must be a non-empty user name without ':'");
    lacks(colon, 'Hunter2');
    has(problems({ ...base, no_proxy: ['ok.example', 'http://bad', 7] }), 'api.no_proxy[1]: must be a host name', 'api.no_proxy[2]: must be a string');
    has(problems({ ...base, no_proxy: 'ok.example, a/b' }), 'api.no_proxy: must be a host name');
    has(problems({ ...base, no_proxy: { a: 1 } }), 'api.no_proxy: must be a list of hosts');
    has(problems({ ...base, proxy_url: 'x' }), 'api.proxy_url');
  });

  test('parseProxyUrl keeps the port explicit and drops a trailing slash', () => {
    const hostOk = () => true;
    assert.deepEqual(parseProxyUrl('http://[::1]:3128/', { schemeOptional: false, allowCredentials: false, hostOk }), { url: 'http://[::1]:3128' });
    assert.deepEqual(parseProxyUrl('HTTP://Proxy.Corp', { schemeOptional: false, allowCredentials: false, hostOk }), { url: 'http://proxy.corp:80' });
    assert.ok('problem' in parseProxyUrl('http://a:%ZZ@proxy.corp:1', { schemeOptional: false, allowCredentials: true, hostOk }));
  });
});

describe('what the operator reads when the proxy says no', () => {
  test('each answer names the proxy, its source and the target, and which keys to change; never the password', () => {
    const noCreds = proxy();
    const withCreds = proxy({ username: 'svc', password: new Secret('Hunter2-env', 'environment variable P') });
    has(refusalMessage(noCreds, 'manage.office.com:443', 407, 'Proxy Authentication Required'),
      'proxy http://proxy.corp:3128 (from api.proxy) wants credentials (HTTP 407 Proxy Authentication Required) for the tunnel to manage.office.com:443: set api.proxy_username and api.proxy_password_env or _file');
    has(refusalMessage(proxy({ source: 'HTTPS_PROXY' }), 'x:443', 407, ''), '(from HTTPS_PROXY) wants credentials (HTTP 407) for the tunnel to x:443: write user:password@ in HTTPS_PROXY');
    const wrong = refusalMessage(withCreds, 'manage.office.com:443', 401, 'Unauthorized');
    has(wrong, 'proxy http://proxy.corp:3128 (from api.proxy) refused the credentials of api.proxy_username (HTTP 401 Unauthorized) for the tunnel to manage.office.com:443');
    lacks(wrong, 'Hunter2-env', 'svc');
    has(refusalMessage({ ...withCreds, source: 'https_proxy' }, 'x:443', 407, ''), 'refused the credentials of the user info of https_proxy');
    has(refusalMessage(noCreds, 'manage.office.com:443', 403, 'Forbidden'), 'refused the tunnel to manage.office.com:443 (HTTP 403 Forbidden): allow it on the proxy, or list the host in api.no_proxy');
    has(refusalMessage(proxy({ source: 'HTTPS_PROXY' }), 'x:443', 403, 'Forbidden'), 'or list the host in NO_PROXY');
    has(refusalMessage(noCreds, 'x:443', 502, 'Bad\r\nGateway\u0000'), 'could not open the tunnel to x:443 (HTTP 502 BadGateway)');
  });
});

// ---------------------------------------------------------------------------------------------
// The agent, against loopback stand-ins for a proxy.

/** A "proxy" that records each CONNECT (line and headers) and answers it with `answer`, or never. */
async function fakeProxy(answer: string | undefined) {
  const connects: { line: string; auth?: string }[] = [];
  const sockets = new Set<net.Socket>();
  let closed = 0;
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => (closed++, sockets.delete(s)));
    s.on('error', () => {});
    let head = '';
    s.on('data', (d) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const lines = head.split('\r\n');
      connects.push({ line: lines[0]!, auth: lines.find((l) => /^proxy-authorization:/i.test(l))?.replace(/^[^:]*:\s*/, '') });
      head = '';
      if (answer !== undefined) s.end(answer);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connects,
    open: () => sockets.size,
    closed: () => closed,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

/** A listener standing for a target host: counts the connections it gets (it speaks no TLS). */
async function fakeTarget() {
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** One GET through `agent`; resolves with the error it ends with (these requests never succeed). */
function failingGet(url: string, agent: http.Agent, timeoutMs = 10_000): Promise<Error> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { agent, signal: AbortSignal.timeout(timeoutMs) }, () => reject(new Error('unexpected response')));
    req.on('error', resolve);
    req.end();
  });
}

describe('the agent', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  test('hosts in the exceptions go direct, the others only through the proxy, which gets the Basic credentials', { timeout: 30_000 }, async () => {
    const px = await fakeProxy('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
    const target = await fakeTarget();
    cleanups.push(px.close, target.close);
    const p = proxy({ url: `http://127.0.0.1:${px.port}`, noProxy: ['127.0.0.1'], username: 'svc@corp', password: new Secret('Hunter2 ü', 'test') });
    const agent = createHttpsAgent({ maxSockets: 4, proxy: p });
    try {
      // localhost is not excepted: the CONNECT reaches the proxy, which refuses; the target sees nothing.
      const refused = await failingGet(`https://localhost:${target.port}/tenant/oauth2/v2.0/token`, agent);
      assert.ok(refused instanceof ProxyError, `${refused}`);
      assert.equal(refused.status, 403);
      has(refused.message, `proxy http://127.0.0.1:${px.port} (from api.proxy) refused the tunnel to localhost:${target.port} (HTTP 403 Forbidden)`);
      lacks(refused.message, 'Hunter2', 'svc@corp');
      assert.deepEqual(px.connects.map((c) => c.line), [`CONNECT localhost:${target.port} HTTP/1.1`]);
      assert.equal(px.connects[0]!.auth, `Basic ${Buffer.from('svc@corp:Hunter2 ü', 'utf8').toString('base64')}`);
      assert.equal(target.connections(), 0, 'nothing reached the target around the proxy');
      // describeNetworkError (what MSAL's client and the API client report) keeps the proxy's words.
      has(describeNetworkError(refused, `https://localhost:${target.port}/x`).message, `proxy http://127.0.0.1:${px.port} (from api.proxy) refused the tunnel`);

      // 127.0.0.1 is excepted: straight to the target, the proxy sees nothing more.
      await failingGet(`https://127.0.0.1:${target.port}/api/v1.0/x`, agent);
      assert.equal(target.connections(), 1);
      assert.equal(px.connects.length, 1);
    } finally {
      agent.destroy();
    }
  });

  test('a proxy that asks for credentials is named with the keys to set', { timeout: 30_000 }, async () => {
    const px = await fakeProxy('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\nContent-Length: 0\r\n\r\n');
    cleanups.push(px.close);
    const agent = createHttpsAgent({ maxSockets: 4, proxy: proxy({ url: `http://127.0.0.1:${px.port}`, source: 'HTTPS_PROXY' }) });
    try {
      const err = await failingGet('https://manage.office.com/api/v1.0/x', agent);
      has(err.message, `proxy http://127.0.0.1:${px.port} (from HTTPS_PROXY) wants credentials (HTTP 407 Proxy Authentication Required) for the tunnel to manage.office.com:443`);
      assert.equal(px.connects[0]!.auth, undefined, 'no credentials configured, none sent');
    } finally {
      agent.destroy();
    }
  });

  test('a proxy that is down is named as such, not blamed on the target', { timeout: 30_000 }, async () => {
    const gone = await fakeTarget();
    await gone.close(); // a port nothing listens on
    const agent = createHttpsAgent({ maxSockets: 4, proxy: proxy({ url: `http://127.0.0.1:${gone.port}` }) });
    try {
      const err = await failingGet('https://manage.office.com/api/v1.0/x', agent);
      assert.ok(err instanceof ProxyError, `${err}`);
      has(err.message, `cannot open a tunnel to manage.office.com:443 through proxy http://127.0.0.1:${gone.port} (from api.proxy) (ECONNREFUSED): nothing listens there`);
      const told = describeNetworkError(err, 'https://manage.office.com/api/v1.0/x').message;
      has(told, `through proxy http://127.0.0.1:${gone.port}`);
      lacks(told, 'connection to manage.office.com refused');
    } finally {
      agent.destroy();
    }
  });

  test('a CONNECT the proxy does not answer in time fails the request with the proxy named, and is ended', { timeout: 30_000 }, async () => {
    const px = await fakeProxy(undefined);
    cleanups.push(px.close);
    const agent = createHttpsAgent({ maxSockets: 4, timeoutMs: 200, proxy: proxy({ url: `http://127.0.0.1:${px.port}` }) });
    try {
      // The request's own signal would not end it: Node reports an abort only once the agent hands
      // the request a socket or an error.
      const err = await failingGet('https://manage.office.com/api/v1.0/x', agent, 60_000);
      assert.ok(err instanceof ProxyError, `${err}`);
      has(err.message, `proxy http://127.0.0.1:${px.port} (from api.proxy) did not answer the CONNECT to manage.office.com:443 within 0.2 s`);
      while (px.closed() === 0) await new Promise((r) => setTimeout(r, 10));
      assert.equal(px.open(), 0);
    } finally {
      agent.destroy();
    }
  });

  test('a CONNECT still waiting when the agent is destroyed is ended (nothing holds the process)', { timeout: 30_000 }, async () => {
    const px = await fakeProxy(undefined);
    cleanups.push(px.close);
    const agent = createHttpsAgent({ maxSockets: 4, timeoutMs: 600_000, proxy: proxy({ url: `http://127.0.0.1:${px.port}` }) });
    const err = failingGet('https://manage.office.com/api/v1.0/x', agent, 600_000);
    while (px.connects.length === 0) await new Promise((r) => setTimeout(r, 10));
    assert.equal(px.closed(), 0);
    agent.destroy();
    assert.ok((await err) instanceof ProxyError);
    while (px.closed() === 0) await new Promise((r) => setTimeout(r, 10));
    assert.equal(px.open(), 0);
  });
});
