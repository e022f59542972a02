/**
 * The proxy for every call towards Microsoft (issue 8, "A real proxy"): MSAL's token calls and the
 * API calls share one per-tenant agent (src/polling/tenant-runtime.ts), so both take the same road.
 * Graylog lost exactly that: its token call ignored the proxy the API calls honoured
 * (/work/shared/reference/peers.md, pain 18).
 *
 * Two halves:
 * - Pure decisions: reading HTTPS_PROXY / https_proxy and NO_PROXY / no_proxy, checking a proxy
 *   URL and NO_PROXY entries (config load reports their problems, src/config/load.ts), and "does
 *   this host:port go through the proxy" (`proxyFor`, `createProxyRoute`).
 * - The agent: requests whose host is excepted go to the ordinary direct `https.Agent`, the others
 *   through `https-proxy-agent` (CONNECT tunnel, then TLS to the target over it). The custom CA
 *   reaches the target through the tunnel as the same prebuilt `secureContext` (see
 *   `createProxyAgent`), never as a `ca` option per request.
 *
 * Proxy credentials never appear in a message: a proxy is always shown as scheme://host:port.
 */
import type http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type tls from 'node:tls';
import { HttpsProxyAgent } from 'https-proxy-agent';
import type { ProxyConfig } from '../config/schema.ts';

// ---------------------------------------------------------------------------------------------
// The environment
// ---------------------------------------------------------------------------------------------

/** Where the proxy may come from in the environment, in order: the first set and non-empty wins. */
export const PROXY_ENV_NAMES = ['HTTPS_PROXY', 'https_proxy'] as const;
/** Where the exceptions may come from in the environment, in order. */
export const NO_PROXY_ENV_NAMES = ['NO_PROXY', 'no_proxy'] as const;

/** A variable that is set (non-blank), with its name for messages. */
export interface EnvSetting {
  name: string;
  value: string;
}

/**
 * The proxy and the exceptions the environment asks for. Upper case wins over lower case when both
 * are set (as Go's net/http does); a blank value counts as unset. HTTP_PROXY is not read: every
 * call towards Microsoft is HTTPS. ALL_PROXY is not read either (it usually means SOCKS). Pure.
 */
export function proxyEnvironment(env: Readonly<Record<string, string | undefined>>): { proxy?: EnvSetting; noProxy?: EnvSetting } {
  const first = (names: readonly string[]): EnvSetting | undefined => {
    for (const name of names) {
      const value = env[name]?.trim();
      if (value) return { name, value };
    }
    return undefined;
  };
  return { proxy: first(PROXY_ENV_NAMES), noProxy: first(NO_PROXY_ENV_NAMES) };
}

// ---------------------------------------------------------------------------------------------
// Proxy URLs
// ---------------------------------------------------------------------------------------------

/** A checked proxy URL: `url` is scheme://host:port (the port always written), credentials apart. */
export interface ParsedProxyUrl {
  url: string;
  /** Decoded from the URL's user info (environment variables only; api.proxy refuses it). */
  username?: string;
  password?: string;
}

const EXAMPLE = 'http://proxy.example:3128';

/**
 * Checks a proxy URL. `http://` (CONNECT over plain HTTP, the usual form) and `https://` (TLS to the
 * proxy too) are accepted; SOCKS and anything else are not (https-proxy-agent speaks HTTP CONNECT).
 * `schemeOptional` takes `proxy:3128` as `http://proxy:3128`, as curl does with HTTPS_PROXY.
 * `allowCredentials` false refuses user info (api.proxy: credentials go in their own keys).
 * A problem never quotes the value: it is described by its length, its scheme, or its
 * scheme://host:port when that host is a plain name or address (`hostOk`). Pure.
 */
export function parseProxyUrl(
  text: string,
  opts: { schemeOptional: boolean; allowCredentials: boolean; hostOk: (u: URL) => boolean },
): ParsedProxyUrl | { problem: string } {
  const raw = text.trim();
  const hasScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(raw);
  let u: URL;
  try {
    u = new URL(hasScheme || !opts.schemeOptional ? raw : `http://${raw}`);
  } catch {
    return { problem: `must be a URL like ${EXAMPLE}, got a value of ${raw.length} characters that is not a URL` };
  }
  // `proxy.corp:3128` parses, with `proxy.corp:` as its scheme.
  if (!hasScheme && !opts.schemeOptional) return { problem: `must be a URL like ${EXAMPLE}, starting with http:// or https://` };
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    const scheme = u.protocol.slice(0, -1);
    const shown = /^[a-z0-9+.-]{1,12}$/.test(scheme) ? `a ${scheme}:// URL` : `a URL of ${raw.length} characters (not shown)`;
    return { problem: `must be an http:// or https:// proxy URL like ${EXAMPLE} (SOCKS is not supported), got ${shown}` };
  }
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  const url = `${u.protocol}//${u.hostname}:${port}`;
  const got = opts.hostOk(u) ? `got ${url}` : `got a URL of ${raw.length} characters (not shown)`;
  if (!u.hostname || !opts.hostOk(u)) return { problem: `must have a DNS name or an IP address as its host, ${got}` };
  if ((u.username || u.password) && !opts.allowCredentials) {
    return { problem: `must not hold a user or password (set api.proxy_username, and api.proxy_password_env or api.proxy_password_file), ${got} with credentials (not shown)` };
  }
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) {
    return { problem: `must be a bare scheme://host:port without a path or query, ${got} followed by more` };
  }
  if (!u.username && !u.password) return { url };
  try {
    return { url, username: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
  } catch {
    return { problem: `holds a user or password that is not valid percent-encoding, ${got} with credentials (not shown)` };
  }
}

// ---------------------------------------------------------------------------------------------
// NO_PROXY
// ---------------------------------------------------------------------------------------------

/** One NO_PROXY entry, understood. */
export type NoProxyRule =
  | { kind: 'all' }
  /** A name and, unless subdomainsOnly, the name itself. */
  | { kind: 'name'; name: string; subdomainsOnly: boolean; port?: number }
  /** An IP address (prefix undefined) or a CIDR block. */
  | { kind: 'address'; address: string; family: 'ipv4' | 'ipv6'; prefix?: number; port?: number };

const BAD_ENTRY = 'must be a host name, .domain, host:port, an IP address or a CIDR block (no scheme or path)';

/**
 * Checks one NO_PROXY entry: the rule, and the entry written back normalised (lower case, `*.x` as
 * `.x`). The forms, as Go's net/http reads them (golang.org/x/net/http/httpproxy):
 * - `*` alone: every host goes direct;
 * - `example.com`: that host and every name under it (`a.example.com`, not `badexample.com`);
 * - `.example.com` or `*.example.com`: only the names under it, not example.com itself;
 * - `host:port`, `10.1.2.3:443`, `[v6]:port`: only on that port;
 * - an IP address (`10.1.2.3`, `::1`, `[::1]`) or a CIDR block (`10.0.0.0/8`, `fd00::/8`): hosts
 *   written as such an address in the URL (names are never resolved to decide).
 * Pure.
 */
export function parseNoProxyEntry(raw: string): { rule: NoProxyRule; entry: string } | { problem: string } {
  const s = raw.trim().toLowerCase();
  if (s === '*') return { rule: { kind: 'all' }, entry: '*' };
  const cidr = /^([0-9a-f.:]+)\/(\d{1,3})$/.exec(s);
  if (cidr) {
    const family = net.isIP(cidr[1]!);
    const prefix = Number(cidr[2]);
    if (family === 0 || prefix > (family === 4 ? 32 : 128)) return { problem: 'is not a valid CIDR block (address/prefix length)' };
    return { rule: { kind: 'address', address: cidr[1]!, family: family === 4 ? 'ipv4' : 'ipv6', prefix }, entry: `${cidr[1]}/${prefix}` };
  }
  if (s.includes('/') || s.includes('@')) return { problem: BAD_ENTRY };
  // [v6], [v6]:port, bare v6 (several colons), else host or host:port.
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s);
  let host: string;
  let portText: string | undefined;
  if (bracketed) [host, portText] = [bracketed[1]!, bracketed[2]];
  else if (net.isIP(s) === 6) host = s;
  else {
    const hp = /^([^:]+)(?::(\d{1,5}))?$/.exec(s);
    if (!hp) return { problem: BAD_ENTRY };
    [host, portText] = [hp[1]!, hp[2]];
  }
  const port = portText === undefined ? undefined : Number(portText);
  if (port !== undefined && (port < 1 || port > 65535)) return { problem: 'has a port that is not 1 to 65535' };
  const withPort = (h: string) => (port === undefined ? h : `${h}:${port}`);
  const family = net.isIP(host);
  if (family !== 0) {
    const shown = family === 6 && port !== undefined ? `[${host}]` : host;
    return { rule: { kind: 'address', address: host, family: family === 4 ? 'ipv4' : 'ipv6', port }, entry: withPort(shown) };
  }
  if (bracketed) return { problem: 'is not a valid IPv6 address' };
  const subdomainsOnly = host.startsWith('.') || host.startsWith('*.');
  const name = host.replace(/^\*?\./, '').replace(/\.$/, '');
  if (!/^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/.test(name)) return { problem: BAD_ENTRY };
  return { rule: { kind: 'name', name, subdomainsOnly, port }, entry: withPort(`${subdomainsOnly ? '.' : ''}${name}`) };
}

/** Splits a NO_PROXY value: entries separated by commas and/or white space. Pure. */
export function splitNoProxy(text: string): string[] {
  return text.split(/[\s,]+/).filter((x) => x !== '');
}

/**
 * The entries of a NO_PROXY value that are understood (normalised), and how many are not: a
 * variable shared with other programs may hold forms only they read; those are left out here. Pure.
 */
export function parseNoProxy(text: string): { entries: string[]; ignored: number } {
  const entries: string[] = [];
  let ignored = 0;
  for (const raw of splitNoProxy(text)) {
    const r = parseNoProxyEntry(raw);
    if ('entry' in r) entries.push(r.entry);
    else ignored++;
  }
  return { entries, ignored };
}

/**
 * Compiles entries into a test "does host:port go direct?". Entries that do not parse are skipped.
 * Addresses are compared through a BlockList, so `::1`, `0:0:0:0:0:0:0:1` and `[::1]` agree. Pure.
 */
export function noProxyMatcher(entries: readonly string[]): (host: string, port: number) => boolean {
  const tests: ((host: string, family: number, port: number) => boolean)[] = [];
  for (const e of entries) {
    const parsed = parseNoProxyEntry(e);
    if (!('rule' in parsed)) continue;
    const r = parsed.rule;
    if (r.kind === 'all') return () => true;
    const portOk = (port: number) => r.port === undefined || r.port === port;
    if (r.kind === 'name') {
      tests.push((host, _family, port) => portOk(port) && (host.endsWith(`.${r.name}`) || (!r.subdomainsOnly && host === r.name)));
    } else {
      const list = new net.BlockList();
      if (r.prefix === undefined) list.addAddress(r.address, r.family);
      else list.addSubnet(r.address, r.prefix, r.family);
      tests.push((host, family, port) => family !== 0 && portOk(port) && list.check(host, family === 6 ? 'ipv6' : 'ipv4'));
    }
  }
  return (host, port) => {
    // Lower case, without IPv6 brackets or a trailing dot: how hosts are compared.
    const h = host.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
    const family = net.isIP(h);
    return tests.some((t) => t(h, family, port));
  };
}

// ---------------------------------------------------------------------------------------------
// The decision
// ---------------------------------------------------------------------------------------------

/**
 * "Which proxy for this host:port": the proxy, or undefined when the call goes direct (no proxy
 * configured, or the host is among its exceptions). Built once per agent; remembers its answers
 * (a tenant talks to two or three hosts). No I/O.
 */
export function createProxyRoute(proxy: ProxyConfig | undefined): (host: string, port: number) => ProxyConfig | undefined {
  if (!proxy) return () => undefined;
  const direct = noProxyMatcher(proxy.noProxy);
  const seen = new Map<string, boolean>();
  return (host, port) => {
    const key = `${host} ${port}`;
    let goesDirect = seen.get(key);
    if (goesDirect === undefined) {
      goesDirect = direct(host, port);
      if (seen.size < 1000) seen.set(key, goesDirect);
    }
    return goesDirect ? undefined : proxy;
  };
}

/** The proxy for one https URL (its host and port, 443 by default), or undefined for direct. Pure. */
export function proxyFor(proxy: ProxyConfig | undefined, url: string): ProxyConfig | undefined {
  const u = new URL(url);
  const port = u.port ? Number(u.port) : u.protocol === 'http:' ? 80 : 443;
  return createProxyRoute(proxy)(u.hostname, port);
}

/** `http://host:port (from HTTPS_PROXY)`: how a proxy is named in logs and errors (no credentials). */
export function describeProxy(proxy: ProxyConfig): string {
  return `${proxy.url} (from ${proxy.source})`;
}

// ---------------------------------------------------------------------------------------------
// The agent
// ---------------------------------------------------------------------------------------------

/**
 * A failure to open a tunnel through the proxy. Its `code`, ERR_PROXY, is the first code
 * describeNetworkError (src/support/network-errors.ts) finds, so it reports this message rather
 * than blame the target host for an ECONNREFUSED from the proxy (kept as the cause). The message
 * names the proxy and the target, never the credentials.
 */
export class ProxyError extends Error {
  readonly code = 'ERR_PROXY';
  /** The proxy's HTTP status for the CONNECT, when it answered. */
  readonly status?: number;
  constructor(message: string, opts: { status?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ProxyError';
    this.status = opts.status;
  }
}

/**
 * What a proxy's answer to CONNECT means for the operator, the facts first: describeNetworkError
 * keeps 200 characters of a message, and node-fetch (MSAL's client) puts its own "request to URL
 * failed, reason: " before it. The hint names the keys to change where the proxy came from. Pure
 * (exported for the tests).
 */
export function refusalMessage(proxy: ProxyConfig, target: string, status: number, statusText: string): string {
  const who = `proxy ${describeProxy(proxy)}`;
  // The reason phrase is the proxy's text: printable ASCII only, and short.
  const reason = statusText.replace(/[^\x20-\x7e]/g, '').trim().slice(0, 40);
  const answer = `HTTP ${status}${reason ? ` ${reason}` : ''}`;
  const fromFile = proxy.source === 'api.proxy';
  if (status === 407 || status === 401) {
    if (proxy.username === undefined) {
      const hint = fromFile ? 'set api.proxy_username and api.proxy_password_env or _file' : `write user:password@ in ${proxy.source}, or set api.proxy and api.proxy_username`;
      return `${who} wants credentials (${answer}) for the tunnel to ${target}: ${hint}`;
    }
    return `${who} refused the credentials of ${fromFile ? 'api.proxy_username' : `the user info of ${proxy.source}`} (${answer}) for the tunnel to ${target}`;
  }
  if (status === 403) {
    return `${who} refused the tunnel to ${target} (${answer}): allow it on the proxy, or list the host in ${fromFile ? 'api.no_proxy' : 'NO_PROXY'}`;
  }
  return `${who} could not open the tunnel to ${target} (${answer})`;
}

interface ProxyAnswer {
  statusCode: number;
  statusText: string;
}

type ConnectOpts = Parameters<HttpsProxyAgent<string>['connect']>[1];

/**
 * https-proxy-agent, with its failures made errors. On an answer other than 200 the library hands
 * node's HTTP parser a fake socket replaying the proxy's answer (so nothing of ours reaches the
 * proxy: hackerone 541502); the API client would then read tinyproxy's "403 Access violation" as
 * the API's own 403, and MSAL an HTML page. Here the answer is turned into a ProxyError before any
 * byte of the request is written, and a failure to reach the proxy is named as such.
 */
class TunnelAgent extends HttpsProxyAgent<string> {
  readonly #proxy: ProxyConfig;
  readonly #timeoutMs: number;
  /** CONNECTs waiting for the proxy's answer: ended when the agent is destroyed. */
  readonly #waiting = new Set<AbortController>();

  constructor(proxy: ProxyConfig, timeoutMs: number, opts: ConstructorParameters<typeof HttpsProxyAgent<string>>[1]) {
    super(new URL(proxy.url), opts);
    this.#proxy = proxy;
    this.#timeoutMs = timeoutMs;
  }

  override async connect(req: http.ClientRequest, opts: ConnectOpts): Promise<net.Socket> {
    const host = String(opts.host);
    const target = `${net.isIPv6(host) ? `[${host}]` : host}:${opts.port}`;
    let answer: ProxyAnswer | undefined;
    const onAnswer = (a: ProxyAnswer) => (answer = a);
    req.once('proxyConnect', onAnswer);
    // A proxy that takes the connection and never answers the CONNECT would hold the request for
    // ever: the request's own abort signal stays silent until the agent hands it a socket or an
    // error (Node's ClientRequest; experiment: a listener that never answers, AbortSignal.timeout
    // 200 ms, no error until the agent was destroyed), and https-proxy-agent keeps no handle on
    // the socket to end it. It opens that socket with net.connect(this.connectOpts) (or
    // tls.connect) before its first await (9.1.0 dist/index.js), so a signal set around that call
    // belongs to that socket alone (a signal shared by all would gather one listener per socket
    // for the agent's lifetime); it is aborted after the request timeout, or by destroy().
    const waiting = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      waiting.abort();
    }, this.#timeoutMs);
    this.connectOpts.signal = waiting.signal;
    let pending: Promise<net.Socket>;
    try {
      pending = super.connect(req, opts);
    } finally {
      delete this.connectOpts.signal;
    }
    this.#waiting.add(waiting);
    let socket: net.Socket;
    try {
      socket = await pending;
    } catch (err) {
      if (timedOut) {
        throw new ProxyError(`proxy ${describeProxy(this.#proxy)} did not answer the CONNECT to ${target} within ${this.#timeoutMs / 1000} s`, { cause: err });
      }
      const e = err as NodeJS.ErrnoException;
      const why = e.code ?? (e.message?.split('\n')[0] ?? String(err)).slice(0, 120);
      const hint = e.code === 'ECONNREFUSED' ? ': nothing listens there' : e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' ? ': check the proxy host name and DNS' : '';
      throw new ProxyError(`cannot open a tunnel to ${target} through proxy ${describeProxy(this.#proxy)} (${why})${hint}`, { cause: err });
    } finally {
      clearTimeout(timer);
      this.#waiting.delete(waiting);
      req.removeListener('proxyConnect', onAnswer);
    }
    if (answer?.statusCode === 200) return socket;
    socket.destroy();
    const status = answer?.statusCode ?? 0;
    throw new ProxyError(refusalMessage(this.#proxy, target, status, answer?.statusText ?? ''), { status });
  }

  override destroy(): void {
    for (const w of this.#waiting) w.abort();
    this.#waiting.clear();
    super.destroy();
  }
}

/** Node's http.Agent entry point, which every ClientRequest (https.request, node-fetch) calls. */
interface AddRequest {
  addRequest(req: http.ClientRequest, options: http.RequestOptions): void;
}

/**
 * The agent handed to MSAL and the API client: an `https.Agent` whose requests are passed, per
 * host, to the direct agent or to the tunnel agent. `addRequest` is how a ClientRequest hands
 * itself to its agent (Node's _http_client.js; agent-base delegates the same way), so both pools
 * keep their own keep-alive sockets and limits. This agent holds no socket itself; it says
 * keepAlive so that requests are sent as keep-alive (ClientRequest sends `Connection: close`
 * through an agent without keepAlive and an infinite maxSockets).
 */
class RoutingAgent extends https.Agent {
  readonly #direct: https.Agent;
  readonly #tunnel: TunnelAgent;
  readonly #route: (host: string, port: number) => ProxyConfig | undefined;

  constructor(opts: ProxyAgentOptions) {
    super({ keepAlive: true, maxSockets: opts.maxSockets });
    this.#direct = opts.direct;
    this.#route = createProxyRoute(opts.proxy);
    const auth = proxyAuthorization(opts.proxy);
    this.#tunnel = new TunnelAgent(opts.proxy, opts.timeoutMs, {
      keepAlive: true,
      maxSockets: opts.maxSockets,
      // Read at each CONNECT, so the password stays inside its Secret between them.
      headers: () => (auth ? { 'Proxy-Authorization': auth() } : {}),
      // The connection to the proxy itself: an https:// proxy is checked against the same CAs as
      // the targets (Node's roots plus api.ca_file).
      ...(opts.secureContext ? { secureContext: opts.secureContext } : {}),
    });
    // The TLS connection to the target, over the tunnel: https-proxy-agent builds it from the
    // request's options merged with `agent.options` (Node's Agent.addRequest), and its constructor
    // resets `options` to `{ path: undefined }`, sending the constructor's TLS options to the proxy
    // connection only (https-proxy-agent 9.1.0 dist/index.js). So the prebuilt secure context goes
    // here: one context for every tunnel, no `ca` option to fold into each pool key.
    if (opts.secureContext) this.#tunnel.options.secureContext = opts.secureContext;
  }

  addRequest(req: http.ClientRequest, options: http.RequestOptions): void {
    const host = String(options.host ?? options.hostname ?? 'localhost');
    const port = Number(options.port ?? 443);
    const via = this.#route(host, port) ? this.#tunnel : this.#direct;
    (via as unknown as AddRequest).addRequest(req, options);
  }

  override destroy(): void {
    this.#tunnel.destroy();
    this.#direct.destroy();
    super.destroy();
  }
}

/** The Proxy-Authorization value (Basic, RFC 7617, UTF-8), read from the Secret when asked. */
function proxyAuthorization(proxy: ProxyConfig): (() => string) | undefined {
  if (proxy.username === undefined) return undefined;
  const user = proxy.username;
  const password = proxy.password;
  return () => `Basic ${Buffer.from(`${user}:${password?.reveal() ?? ''}`, 'utf8').toString('base64')}`;
}

/** What createProxyAgent takes. */
export interface ProxyAgentOptions {
  proxy: ProxyConfig;
  /** The ordinary agent, for the hosts in the proxy's exceptions (it keeps its own secure context). */
  direct: https.Agent;
  /** Node's roots plus api.ca_file, built once: the TLS to each target through a tunnel uses it. */
  secureContext?: tls.SecureContext;
  /** Sockets per host through the tunnel agent (the direct agent has its own). */
  maxSockets: number;
  /** How long the proxy may take to answer a CONNECT (the request timeout). */
  timeoutMs: number;
}

/**
 * The agent for the Microsoft side when a proxy is configured: hosts in the proxy's exceptions go
 * through `direct`, the others through a CONNECT tunnel whose TLS to the target uses
 * `secureContext`. Destroying it destroys both, and ends CONNECTs still waiting for an answer.
 */
export function createProxyAgent(opts: ProxyAgentOptions): https.Agent {
  return new RoutingAgent(opts);
}
