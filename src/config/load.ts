import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import type { KeyObject, X509Certificate } from 'node:crypto';
import path from 'node:path';
import { CST, Lexer, parseDocument } from 'yaml';
import { CollectorError } from '../errors.ts';
import { CONTENT_TYPES, isContentType, type ContentType } from '../management-api/content-types.ts';
import { CLOUDS, isCloudName, type CloudName } from './clouds.ts';
import { formatDuration, isZeroDuration, parseDuration } from './durations.ts';
import { parseListen } from '../metrics/listen.ts';
import {
  DEFAULTS,
  Secret,
  type Config,
  type Credential,
  type ForwardOutputConfig,
  type ProxyConfig,
  type TenantConfig,
  type TlsClientConfig,
} from './schema.ts';
import { parseNoProxy, parseNoProxyEntry, parseProxyUrl, proxyEnvironment, splitNoProxy } from '../support/proxy.ts';
import {
  ENV_NAME,
  Problems,
  checkCertificates,
  checkKeys,
  checkPrivateKey,
  decodeText,
  describeEnvName,
  describePath,
  describeWord,
  fileProblem,
  isObj,
  isShowable,
  join,
  looksRandom,
  optBool,
  optInt,
  optString,
  redactFreeText,
  safeOrigin,
  section,
  typeName,
  type Obj,
} from './validate.ts';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A Fluent Bit / Devo tag. */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** A DNS name or an IPv4/IPv6 address (never a pasted secret: `~` and the like fail). */
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*|\[?[0-9A-Fa-f:.]+\]?)$/;

/** Largest config file read: a real one is a few KB; anything near this is the wrong file. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** Largest PEM file read: the system CA bundle (ca-certificates.crt) is about 220 KB. */
const MAX_PEM_BYTES = 4 * 1024 * 1024;
/** Largest secret file read: an Entra client secret is 40 characters. */
const MAX_SECRET_FILE_BYTES = 64 * 1024;
/**
 * Deepest YAML nesting accepted (indentation columns + `- ` items on a line + open brackets).
 * The `yaml` parser recurses per level and overflows the stack near 800 levels; after one such
 * overflow, the next deep parse in the same process aborted it with "FATAL ERROR: RegExpCompiler
 * Allocation failed" (experiment with yaml 2.9.1, Node 20: `[`×1000 then `[`×10000). A config
 * needs about 10, so 100 refuses hostile input well before the parser sees it.
 */
const MAX_NESTING = 100;
/** Alias expansions allowed by toJS (the `yaml` default, stated): a "billion laughs" file stops here. */
const MAX_ALIAS_COUNT = 100;

/** What the loader may touch outside the YAML tree; injectable for tests. */
export interface LoadEnv {
  env: NodeJS.ProcessEnv;
  /**
   * Reads a whole regular file of at most `maxBytes`, as bytes (or as text, for test doubles).
   * Throws an error whose `code` says why not: a Node fs code (ENOENT, EACCES, EISDIR, ...),
   * ENOTREG for something that is not a regular file, EFBIG when it is larger than `maxBytes`.
   */
  readFile: (file: string, maxBytes: number) => Uint8Array | string;
}

/**
 * The real reader behind LoadEnv.readFile. Opens without blocking so a FIFO (or a device) named
 * by mistake is refused instead of hanging the loader, checks the type and size on the open
 * descriptor (no race with a rename), and never reads more than maxBytes + 1 bytes.
 */
export function readRegularFile(file: string, maxBytes: number): Buffer {
  const coded = (code: string) => Object.assign(new Error(code), { code });
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw coded('EISDIR');
    if (!st.isFile()) throw coded('ENOTREG');
    if (st.size > maxBytes) throw coded('EFBIG');
    // Read to EOF rather than trusting st.size: files under /proc report 0, and a file may grow.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, maxBytes + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > maxBytes) throw coded('EFBIG');
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

const realEnv: LoadEnv = { env: process.env, readFile: readRegularFile };

/** Command-line flags that override the file (`run --output ... --state ...`). */
export interface ConfigOverrides {
  output?: 'forward' | 'stdout';
  recordFormat?: 'record' | 'devo';
  forwardHost?: string;
  forwardPort?: number;
  statePath?: string;
}

/** Reads a file through io, mapping every failure (and a file that is too large) to an error code. */
function readBounded(io: LoadEnv, file: string, maxBytes: number): { bytes: Uint8Array | string } | { code: string } {
  try {
    const bytes = io.readFile(file, maxBytes);
    const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
    return size > maxBytes ? { code: 'EFBIG' } : { bytes };
  } catch (err) {
    return { code: (err as NodeJS.ErrnoException).code ?? 'EIO' };
  }
}

/**
 * Reads, parses and validates a config file. Throws CONFIG_INVALID listing every problem; a file
 * that cannot be read, is not UTF-8 text, is over 1 MiB or is hostile YAML is one clear line.
 */
export function loadConfig(file: string, overrides: ConfigOverrides = {}, io: LoadEnv = realEnv): Config {
  const abs = path.resolve(file);
  const invalid = (what: string) => new CollectorError('CONFIG_INVALID', `config file ${abs} ${what}`, { fatal: true });
  const read = readBounded(io, abs, MAX_CONFIG_BYTES);
  if ('code' in read) throw invalid(fileProblem(read.code, MAX_CONFIG_BYTES));
  const text = decodeText(read.bytes);
  if (text === undefined) throw invalid('is not UTF-8 text (binary data, or another encoding: save it as UTF-8)');
  return parseConfig(parseYamlText(text, abs), abs, overrides, io);
}

/**
 * Parses YAML text into a plain tree, defended against hostile input: too deep nesting is refused
 * before the parser runs, alias expansion is bounded, and nothing the parser throws escapes as
 * anything but CONFIG_INVALID. Parser messages are redacted (they can quote the source).
 */
export function parseYamlText(text: string, sourceFile: string): unknown {
  const invalid = (lines: string[]) =>
    new CollectorError('CONFIG_INVALID', `config ${sourceFile} is not valid YAML:\n${lines.map((l) => `  - ${l}`).join('\n')}`, { fatal: true });
  const deep = tooDeepLine(text);
  if (deep !== undefined) {
    throw invalid([`nested more than ${MAX_NESTING} levels deep at line ${deep} (a config needs about 10)`]);
  }
  let doc;
  try {
    doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  } catch {
    throw invalid(['the YAML parser gave up on this file']);
  }
  if (doc.errors.length > 0) throw invalid(doc.errors.map((e) => redactFreeText(e.message.split('\n')[0]!)));
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // yaml throws from toJS, not as a document error, when aliases expand past maxAliasCount
    // ("Excessive alias count indicates a resource exhaustion attack") and for an alias without
    // its anchor ("Unresolved alias ...: <name>", which quotes the source, hence the redaction).
    const msg = err instanceof Error ? err.message : String(err);
    throw invalid([
      /excessive alias count/i.test(msg)
        ? `its aliases (*name) expand to more than ${MAX_ALIAS_COUNT} copies ("billion laughs"?); write the values out instead`
        : redactFreeText(msg.split('\n')[0]!),
    ]);
  }
}

/**
 * The 1-based line where the nesting estimate first exceeds MAX_NESTING, or undefined. The estimate
 * (indentation columns + `- `/`? ` indicators on the line + open flow brackets) is never below the
 * real depth, and the lexer is a loop, not a recursion, so it is safe on any input; it stops early.
 */
function tooDeepLine(text: string): number | undefined {
  let line = 1;
  let indent = 0;
  let indicators = 0;
  let flow = 0;
  let atLineStart = true;
  let scalarSource = false;
  for (const tok of new Lexer().lex(text)) {
    if (scalarSource) {
      // The token after a SCALAR marker is the scalar's source (maybe several lines).
      scalarSource = false;
      line += tok.split('\n').length - 1;
      atLineStart = false;
      continue;
    }
    if (tok === CST.SCALAR) {
      scalarSource = true;
      continue;
    }
    switch (CST.tokenType(tok)) {
      case 'newline':
        line++;
        indent = indicators = 0;
        atLineStart = true;
        continue;
      case 'space':
        if (atLineStart) indent = tok.length;
        break;
      case 'seq-item-ind':
      case 'explicit-key-ind':
        indicators++;
        break;
      case 'flow-seq-start':
      case 'flow-map-start':
        flow++;
        break;
      case 'flow-seq-end':
      case 'flow-map-end':
        flow = Math.max(0, flow - 1);
        break;
      default:
        break;
    }
    atLineStart = false;
    if (indent + indicators + flow > MAX_NESTING) return line;
  }
  return undefined;
}

/** A file named by the config, read: where it is, how to name it in a message, its text. */
interface NamedFile {
  path: string;
  /** The path, or a description when the user's text could be a secret (describePath). */
  shown: string;
  /** undefined when the file is not UTF-8 text. */
  text: string | undefined;
}
type ReadNamed = (keyPath: string, raw: string, maxBytes: number) => NamedFile | undefined;

/** Validates a parsed YAML tree. Relative paths inside resolve against the config file's folder. */
export function parseConfig(tree: unknown, sourceFile: string, overrides: ConfigOverrides = {}, io: LoadEnv = realEnv): Config {
  const p = new Problems();
  const baseDir = path.dirname(sourceFile);
  const resolvePath = (f: string) => path.resolve(baseDir, f);
  const root: Obj = isObj(tree) ? tree : {};
  if (!isObj(tree)) p.add('(top level)', `must be a mapping, got ${typeName(tree)}`);
  checkKeys(p, '', root, ['tenants', 'output', 'routing', 'status', 'state', 'polling', 'api', 'metrics']);

  // Every file the config names is read now, so a wrong path is a config error with its key, not
  // a failure at the first token request or the first send (which wedged the collector for TLS).
  const readNamed: ReadNamed = (keyPath, raw, maxBytes) => {
    const resolved = resolvePath(raw);
    const shown = describePath(raw, resolved);
    if (raw.startsWith('~/')) {
      p.add(keyPath, 'starts with "~/", which is not expanded: write the absolute path');
      return undefined;
    }
    const read = readBounded(io, resolved, maxBytes);
    if ('code' in read) {
      p.add(keyPath, `${shown} ${fileProblem(read.code, maxBytes)}`);
      return undefined;
    }
    return { path: resolved, shown, text: decodeText(read.bytes) };
  };

  // --- tenants
  const tenants: TenantConfig[] = [];
  const rawTenants = root.tenants;
  if (!Array.isArray(rawTenants) || rawTenants.length === 0) {
    p.add('tenants', rawTenants === undefined ? 'is required: a list with at least one tenant' : `must be a non-empty list, got ${typeName(rawTenants)}`);
  } else {
    const feeds: TenantFeeds[] = [];
    rawTenants.forEach((t, i) => {
      const tp = join('tenants', i);
      if (!isObj(t)) return p.add(tp, `must be a mapping, got ${typeName(t)}`);
      const parsed = parseTenant(p, tp, t, io, readNamed);
      if (parsed.tenant) tenants.push(parsed.tenant);
      if (parsed.feeds) feeds.push(parsed.feeds);
    });
    for (const d of overlappingTenants(feeds)) {
      p.add(
        join(d.second, 'tenant_id'),
        `is the same tenant as ${d.first} and both collect ${d.types.join(', ')}: every record would be sent twice; ` +
          'give the two entries content_types that do not overlap, or merge them',
      );
    }
    const names = new Set<string>();
    tenants.forEach((t, i) => {
      if (names.has(t.name)) {
        p.add(join(join('tenants', i), 'name'), `duplicate tenant name${isShowable(t.name) ? ` "${t.name}"` : ''} (names key the state file): give each tenant its own`);
      }
      names.add(t.name);
    });
  }

  // --- output
  const out = section(p, '', root, 'output');
  checkKeys(p, 'output', out, ['type', 'record_format', 'forward']);
  let type = out.type ?? 'forward';
  if (type !== 'forward' && type !== 'stdout') {
    p.add('output.type', `must be "forward" or "stdout", got ${typeName(type)}`);
    type = 'forward';
  }
  let recordFormat = out.record_format ?? 'record';
  if (recordFormat !== 'record' && recordFormat !== 'devo') {
    p.add('output.record_format', `must be "record" or "devo", got ${typeName(recordFormat)}`);
    recordFormat = 'record';
  }
  const forward = parseForward(p, section(p, 'output', out, 'forward'), resolvePath, readNamed);

  // --- routing
  const routing = section(p, '', root, 'routing');
  checkKeys(p, 'routing', routing, ['tag_template', 'workload_tables']);
  const tagTemplate = optString(p, 'routing', routing, 'tag_template') ?? DEFAULTS.tagTemplate;
  if (!tagTemplate.includes('{table}')) p.add('routing.tag_template', 'must contain {table}');
  const workloadTables: Record<string, string> = {};
  const wt = section(p, 'routing', routing, 'workload_tables');
  for (const [k, v] of Object.entries(wt)) {
    if (typeof v !== 'string' || !/^[a-z0-9]+$/i.test(v)) {
      p.add(join('routing.workload_tables', k), `must be a table name of letters and digits, got ${typeName(v)}`);
    } else workloadTables[k] = v;
  }

  // --- polling (before status: stall_after is checked against the poll interval)
  const polling = section(p, '', root, 'polling');
  checkKeys(p, 'polling', polling, ['interval', 'initial_lookback', 'overlap', 'sweep_interval', 'concurrency', 'request_timeout', 'max_attempts']);
  const intervalMs = duration(p, 'polling', polling, 'interval', DEFAULTS.pollIntervalMs, 1000, 86_400_000);
  const initialLookbackMs = duration(p, 'polling', polling, 'initial_lookback', DEFAULTS.initialLookbackMs, 60_000, DEFAULTS.maxLookbackMs);
  // At least 10 min: the API lists blobs minutes after their contentCreated; with less, those are missed.
  const overlapMs = duration(p, 'polling', polling, 'overlap', DEFAULTS.overlapMs, 600_000, 24 * 3_600_000);
  // 0 turns the sweep off. Otherwise at least 5 s (tests and the simulator use seconds; against a
  // real tenant keep minutes to hours: a sweep lists up to 7 one-day windows per feed, reference §5:
  // 2,000 requests/minute per tenant); at most 7 days, the API's retention.
  const sweepIntervalMs = isZeroDuration(polling.sweep_interval)
    ? 0
    : duration(p, 'polling', polling, 'sweep_interval', DEFAULTS.sweepIntervalMs, 5_000, DEFAULTS.maxLookbackMs, ' (or 0 to turn the sweep off)');
  const concurrency = optInt(p, 'polling', polling, 'concurrency', 1, 64) ?? DEFAULTS.concurrency;
  const requestTimeoutMs = duration(p, 'polling', polling, 'request_timeout', DEFAULTS.requestTimeoutMs, 1000, 600_000);
  const maxAttempts = optInt(p, 'polling', polling, 'max_attempts', 1, 100) ?? DEFAULTS.maxAttempts;

  // --- status
  const status = section(p, '', root, 'status');
  checkKeys(p, 'status', status, ['tag', 'interval', 'stall_after']);
  const statusTag = optString(p, 'status', status, 'tag') ?? DEFAULTS.statusTag;
  if (!TAG.test(statusTag)) p.add('status.tag', `must be a tag of letters, digits and . _ - (at most 128; it goes on the wire), got ${typeName(status.tag)}`);
  const statusInterval = duration(p, 'status', status, 'interval', DEFAULTS.statusIntervalMs, 1000, 86_400_000);
  const stallAfterMs = duration(p, 'status', status, 'stall_after', DEFAULTS.stallAfterMs, 60_000, 7 * 86_400_000);
  const reported = new Set(p.list.map((x) => x.path));
  if (stallAfterMs <= intervalMs && !reported.has('status.stall_after') && !reported.has('polling.interval')) {
    // A feed is polled once per interval: a stall_after not longer than that would call every
    // healthy feed stalled between two polls.
    p.add(
      'status.stall_after',
      `must be longer than polling.interval (${formatDuration(intervalMs)}), got ${formatDuration(stallAfterMs)}` +
        `${status.stall_after === undefined ? ' (the default)' : ''}: set it to a few poll intervals`,
    );
  }

  // --- metrics (off unless listen is set)
  const metrics = section(p, '', root, 'metrics');
  checkKeys(p, 'metrics', metrics, ['listen', 'stall_after']);
  const metricsListen = metrics.listen === undefined || metrics.listen === null ? undefined : parseListen(metrics.listen);
  if (metricsListen && 'problem' in metricsListen) p.add('metrics.listen', metricsListen.problem);
  // Unset, it is status.stall_after (30m by default; checked above). At least 1s, for tests; and,
  // as for status.stall_after, longer than polling.interval: a feed completes a poll once per
  // interval, so a shorter one would call every healthy feed stalled between two polls.
  const metricsStallMs = duration(p, 'metrics', metrics, 'stall_after', stallAfterMs, 1000, 7 * 86_400_000);
  const metricsStallBad = p.list.some((x) => x.path === 'metrics.stall_after');
  if (metrics.stall_after != null && !metricsStallBad && metricsStallMs <= intervalMs && !reported.has('polling.interval')) {
    p.add('metrics.stall_after', `must be longer than polling.interval (${formatDuration(intervalMs)}), got ${formatDuration(metricsStallMs)}: set it to a few poll intervals`);
  }

  // --- state
  const state = section(p, '', root, 'state');
  checkKeys(p, 'state', state, ['path']);
  const statePath = resolvePath(optString(p, 'state', state, 'path') ?? DEFAULTS.statePath);
  const virtualFs = (f: string) => /^\/(proc|sys|dev)(\/|$)/.test(f);
  if (virtualFs(statePath) || (overrides.statePath && virtualFs(path.resolve(overrides.statePath)))) {
    p.add(overrides.statePath ? '--state' : 'state.path', 'is on a virtual file system (/proc, /sys or /dev): put the state on persistent storage');
  }

  // --- api
  const api = section(p, '', root, 'api');
  checkKeys(p, 'api', api, ['ca_file', ...PROXY_KEYS]);
  const caFile = optString(p, 'api', api, 'ca_file');
  if (caFile) certificatesIn(p, 'api.ca_file', readNamed('api.ca_file', caFile, MAX_PEM_BYTES));
  const proxy = parseProxy(p, api, io, readNamed);

  // --- overrides from the command line win over the file
  if (overrides.output) type = overrides.output;
  if (overrides.recordFormat) recordFormat = overrides.recordFormat;
  if ((overrides.forwardHost || overrides.forwardPort !== undefined) && forward.unixSocket) {
    const raw = isObj(out.forward) && typeof out.forward.unix_socket === 'string' ? out.forward.unix_socket.trim() : '';
    p.add('--forward-host/--forward-port', `cannot apply: output.forward.unix_socket is set (${describePath(raw, forward.unixSocket)})`);
  }
  if (overrides.forwardHost && !HOST.test(overrides.forwardHost)) p.add('--forward-host', `must be a host name or an IP address, got ${typeName(overrides.forwardHost)}`);
  else if (overrides.forwardHost) forward.host = overrides.forwardHost;
  if (overrides.forwardPort !== undefined) {
    if (!Number.isInteger(overrides.forwardPort) || overrides.forwardPort < 1 || overrides.forwardPort > 65535) {
      p.add('--forward-port', `must be a port number from 1 to 65535, got ${typeName(overrides.forwardPort)}`);
    } else forward.port = overrides.forwardPort;
  }

  if (!p.empty) {
    const lines = p.list.map((x) => `  - ${x.path}: ${x.message}`).join('\n');
    throw new CollectorError('CONFIG_INVALID', `config ${sourceFile} has ${p.list.length} problem(s):\n${lines}`, { fatal: true });
  }
  return {
    tenants,
    output: { type: type as 'forward' | 'stdout', recordFormat: recordFormat as 'record' | 'devo', forward },
    routing: { tagTemplate, workloadTables },
    status: { tag: statusTag, intervalMs: statusInterval, stallAfterMs },
    state: { path: overrides.statePath ? path.resolve(overrides.statePath) : statePath },
    polling: { intervalMs, initialLookbackMs, overlapMs, sweepIntervalMs, concurrency, requestTimeoutMs, maxAttempts },
    api: { caFile: caFile ? resolvePath(caFile) : undefined, ...(proxy ? { proxy } : {}) },
    metrics: { ...(metricsListen && !('problem' in metricsListen) ? { listen: metricsListen } : {}), stallAfterMs: metricsStallMs },
    sourceFile,
  };
}

function duration(p: Problems, path: string, obj: Obj, key: string, def: number, min: number, max: number, also = ''): number {
  const v = obj[key];
  if (v === undefined || v === null) return def;
  const ms = parseDuration(v);
  if (ms === undefined) {
    p.add(join(path, key), `must be a duration like 30s, 5m, 2h, 7d (or seconds as a number)${also}, got ${typeName(v)}`);
    return def;
  }
  if (ms < min || ms > max) {
    p.add(join(path, key), `must be between ${formatDuration(min)} and ${formatDuration(max)}${also}, got ${typeName(v)}`);
    return def;
  }
  return ms;
}

/** The feeds one tenant entry asks for, when its tenant_id and content_types are valid. */
interface TenantFeeds {
  path: string;
  tenantId: string;
  contentTypes: readonly ContentType[];
}

/**
 * Pairs of entries for the same tenant (tenant ids compared case-insensitively: Entra accepts
 * either case) whose content types overlap: each such feed would be collected, and every record
 * sent, twice. Pure.
 */
export function overlappingTenants(list: readonly TenantFeeds[]): { first: string; second: string; types: ContentType[] }[] {
  const found: { first: string; second: string; types: ContentType[] }[] = [];
  list.forEach((b, j) => {
    for (const a of list.slice(0, j)) {
      if (a.tenantId.toLowerCase() !== b.tenantId.toLowerCase()) continue;
      const types = b.contentTypes.filter((c) => a.contentTypes.includes(c));
      if (types.length > 0) found.push({ first: a.path, second: b.path, types });
    }
  });
  return found;
}

function parseTenant(
  p: Problems,
  tp: string,
  t: Obj,
  io: LoadEnv,
  readNamed: ReadNamed,
): { tenant?: TenantConfig; feeds?: TenantFeeds } {
  checkKeys(p, tp, t, [
    'name', 'tenant_id', 'client_id', 'cloud', 'api_url', 'login_url',
    'client_secret', 'client_secret_env', 'client_secret_file', 'certificate',
    'publisher_identifier', 'content_types', 'max_requests_per_minute',
  ]);
  const before = p.list.length;
  let tenantId = optString(p, tp, t, 'tenant_id');
  if (!tenantId) p.add(join(tp, 'tenant_id'), 'is required (the directory GUID of the tenant)');
  else if (!GUID.test(tenantId)) {
    p.add(join(tp, 'tenant_id'), `must be a GUID like 11111111-2222-3333-4444-555555555555 (the API rejects anything else with AF20013), got ${notGuid(tenantId)}`);
    tenantId = undefined;
  }
  const clientId = optString(p, tp, t, 'client_id');
  if (!clientId) p.add(join(tp, 'client_id'), 'is required (the application (client) id of the app registration)');
  else if (!GUID.test(clientId)) p.add(join(tp, 'client_id'), `must be a GUID (the application (client) id), got ${notGuid(clientId)}`);

  // Cloud and hosts: a named cloud, or explicit URLs (which also override a named cloud).
  const cloudRaw = t.cloud ?? 'commercial';
  let cloud: CloudName | 'custom' = 'commercial';
  if (!isCloudName(cloudRaw)) {
    const got = typeof cloudRaw === 'string' ? describeWord(cloudRaw, 'a cloud name') : typeName(cloudRaw);
    p.add(join(tp, 'cloud'), `must be one of ${Object.keys(CLOUDS).join(', ')}, got ${got}`);
  } else cloud = cloudRaw;
  const hosts = CLOUDS[cloud as CloudName] ?? CLOUDS.commercial;
  const apiUrl = httpsUrl(p, join(tp, 'api_url'), optString(p, tp, t, 'api_url')) ?? hosts.apiUrl;
  const loginUrl = httpsUrl(p, join(tp, 'login_url'), optString(p, tp, t, 'login_url')) ?? hosts.loginUrl;
  if (t.api_url !== undefined || t.login_url !== undefined) cloud = 'custom';

  const credential = parseCredential(p, tp, t, io, readNamed);

  const publisherIdentifier = optString(p, tp, t, 'publisher_identifier') ?? tenantId ?? '';
  if (t.publisher_identifier !== undefined && publisherIdentifier && !GUID.test(publisherIdentifier)) {
    p.add(join(tp, 'publisher_identifier'), `must be a GUID (your own tenant id), got ${notGuid(publisherIdentifier)}`);
  }

  let contentTypes: ContentType[] = [...CONTENT_TYPES];
  let contentTypesValid = true;
  if (t.content_types !== undefined) {
    const ct = t.content_types;
    if (!Array.isArray(ct) || ct.length === 0) {
      p.add(join(tp, 'content_types'), `must be a non-empty list, got ${typeName(ct)}`);
      contentTypesValid = false;
    } else {
      contentTypes = [];
      ct.forEach((v, i) => {
        if (!isContentType(v)) {
          p.add(join(join(tp, 'content_types'), i), `must be one of ${CONTENT_TYPES.join(', ')}, got ${typeName(v)}`);
          contentTypesValid = false;
        } else if (contentTypes.includes(v)) p.add(join(join(tp, 'content_types'), i), `${v} is listed twice`);
        else contentTypes.push(v);
      });
    }
  }
  const maxRequestsPerMinute = optInt(p, tp, t, 'max_requests_per_minute', 10, 100_000) ?? DEFAULTS.maxRequestsPerMinute;
  const feeds = tenantId && contentTypesValid ? { path: tp, tenantId, contentTypes } : undefined;
  const name = optString(p, tp, t, 'name') ?? tenantId ?? `tenant${tp}`;
  // The name goes into every log line, status record and state key: a label, never something
  // that could be a secret pasted into the wrong key.
  if (t.name !== undefined && (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(name) || looksRandom(name))) {
    p.add(join(tp, 'name'), `must be a label of letters, digits and . _ - @ (at most 64, not a random-looking string: it appears in logs, status records and the state file), got ${typeName(t.name)}`);
  }
  if (p.list.length > before || !tenantId || !clientId || !credential) return { feeds };
  return { tenant: { name, tenantId, clientId, cloud, apiUrl, loginUrl, credential, publisherIdentifier, contentTypes, maxRequestsPerMinute }, feeds };
}

/** Exactly one of the secret forms or a certificate; every file read and checked now. */
function parseCredential(p: Problems, tp: string, t: Obj, io: LoadEnv, readNamed: ReadNamed): Credential | undefined {
  const forms = ['client_secret', 'client_secret_env', 'client_secret_file', 'certificate'].filter((k) => t[k] !== undefined);
  if (forms.length === 0) {
    p.add(tp, 'needs a credential: one of client_secret, client_secret_env, client_secret_file, certificate');
    return undefined;
  }
  if (forms.length > 1) {
    p.add(tp, `has more than one credential (${forms.join(', ')}); keep exactly one`);
    return undefined;
  }
  if (forms[0] === 'client_secret') {
    const v = t.client_secret;
    if (typeof v !== 'string' || v === '') p.add(join(tp, 'client_secret'), `must be a non-empty string, got ${typeName(v)}`);
    else return { kind: 'secret', secret: new Secret(v, `${tp}.client_secret`) };
    return undefined;
  }
  if (forms[0] === 'client_secret_env') {
    const kp = join(tp, 'client_secret_env');
    const name = optString(p, tp, t, 'client_secret_env');
    if (name === undefined) return undefined;
    const v = ENV_NAME.test(name) ? io.env[name] : undefined;
    if (!v && (!ENV_NAME.test(name) || looksRandom(name))) {
      // Most likely the secret itself, pasted here: say so without printing it.
      p.add(kp, `must be the name of an environment variable (letters, digits, _), got ${describeEnvName(name)}; set the secret in a variable and name the variable here, or use client_secret_file`);
      return undefined;
    }
    if (!v) {
      p.add(kp, `environment variable ${name} is not set or empty`);
      return undefined;
    }
    return { kind: 'secret', secret: new Secret(v, `environment variable ${describeEnvName(name)}`) };
  }
  if (forms[0] === 'client_secret_file') {
    const kp = join(tp, 'client_secret_file');
    const file = optString(p, tp, t, 'client_secret_file');
    const f = file ? readNamed(kp, file, MAX_SECRET_FILE_BYTES) : undefined;
    if (!f) return undefined;
    const v = f.text?.trim(); // files written by editors or `echo` end in a newline
    if (v === undefined) p.add(kp, `${f.shown} is not UTF-8 text`);
    else if (!v) p.add(kp, `${f.shown} is empty`);
    else if (/[\r\n]/.test(v)) p.add(kp, `${f.shown} holds more than one line; put only the secret in it`);
    else return { kind: 'secret', secret: new Secret(v, `file ${f.shown}`) };
    return undefined;
  }
  return parseCertificateCredential(p, join(tp, 'certificate'), section(p, tp, t, 'certificate'), readNamed);
}

/**
 * The app's certificate: the checks token-provider.ts `certificateCredential` makes before MSAL
 * signs a client assertion, made at load with key paths. Entra ID takes RSA keys of 2048 bits or
 * more (reference management-api.md §2.3).
 */
function parseCertificateCredential(p: Problems, cp: string, c: Obj, readNamed: ReadNamed): Credential | undefined {
  checkKeys(p, cp, c, ['private_key_file', 'certificate_file']);
  const before = p.list.length;
  const kp = join(cp, 'private_key_file');
  const ccp = join(cp, 'certificate_file');
  const keyFile = optString(p, cp, c, 'private_key_file');
  const certFile = optString(p, cp, c, 'certificate_file');
  if (!keyFile) p.add(kp, 'is required (PEM private key of the certificate registered on the app)');
  if (!certFile) p.add(ccp, 'is required (PEM certificate registered on the app)');
  const keyF = keyFile ? readNamed(kp, keyFile, MAX_PEM_BYTES) : undefined;
  const certF = certFile ? readNamed(ccp, certFile, MAX_PEM_BYTES) : undefined;
  const key = privateKeyIn(p, kp, keyF);
  const cert = certificatesIn(p, ccp, certF)?.[0];
  if (key && keyF) {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (key.asymmetricKeyType !== 'rsa') {
      p.add(kp, `${keyF.shown} is a${key.asymmetricKeyType === 'ec' ? 'n' : ''} ${key.asymmetricKeyType} key; Entra ID client certificates must be RSA (2048 bits or more)`);
    } else if (bits < 2048) {
      p.add(kp, `${keyF.shown} is an RSA key of ${bits} bits; Entra ID needs 2048 bits or more`);
    } else if (cert && certF && !cert.checkPrivateKey(key)) {
      p.add(kp, `${keyF.shown} does not belong to ${ccp} (${certF.shown})`);
    }
  }
  if (p.list.length > before || !keyF?.text || !certF?.text) return undefined;
  return { kind: 'certificate', privateKey: new Secret(keyF.text, `file ${keyF.shown}`), certificatePem: certF.text, privateKeyFile: keyF.path, certificateFile: certF.path };
}

/** The certificates of a PEM file, or undefined with the problem reported. */
function certificatesIn(p: Problems, keyPath: string, f: NamedFile | undefined): X509Certificate[] | undefined {
  if (!f) return undefined;
  const r = checkCertificates(f.text);
  if (!r.ok) p.add(keyPath, `${f.shown} ${r.problem}`);
  return r.ok ? r.value : undefined;
}

/** The private key of a PEM file, or undefined with the problem reported. */
function privateKeyIn(p: Problems, keyPath: string, f: NamedFile | undefined): KeyObject | undefined {
  if (!f) return undefined;
  const r = checkPrivateKey(f.text);
  if (!r.ok) p.add(keyPath, `${f.shown} ${r.problem}`);
  return r.ok ? r.value : undefined;
}

/**
 * Describes a value that should have been a GUID without printing it: a client secret pasted
 * into the wrong field (easy to do from the portal) must not end up in logs.
 */
function notGuid(v: string): string {
  return `a value of ${v.length} characters that is not a GUID`;
}

/**
 * A bare https origin, or undefined with the problem reported. Messages show the parsed origin
 * only (safeOrigin), never the text: a URL can carry a token or a pasted secret.
 */
function httpsUrl(p: Problems, keyPath: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    p.add(keyPath, `must be a URL like https://manage.office.com, got a value of ${v.length} characters that is not a URL`);
    return undefined;
  }
  const origin = safeOrigin(u);
  const got = origin ? `got ${origin}` : `got a URL of ${v.length} characters (not shown)`;
  if (u.protocol !== 'https:') {
    p.add(keyPath, `must use https (Entra ID and the API are HTTPS only), ${got}`);
    return undefined;
  }
  if (!origin) {
    p.add(keyPath, `must have a DNS name or an IP address as its host, ${got}`);
    return undefined;
  }
  if (u.pathname !== '/' || u.search || u.hash || u.username || u.password) {
    p.add(keyPath, `must be a bare scheme://host[:port] without a path, query or user, ${got} followed by more`);
    return undefined;
  }
  return u.origin;
}

/** The `api` keys of the proxy (README "Behind a proxy"). */
const PROXY_KEYS = ['proxy', 'proxy_username', 'proxy_password_env', 'proxy_password_file', 'no_proxy'] as const;
const PROXY_EXAMPLE = 'http://proxy.example:3128';

/**
 * The proxy for every call to Entra ID and the API (issue 8), or undefined for direct. `api.proxy`
 * (`none`: never a proxy) comes with api.proxy_username, api.proxy_password_env or _file and
 * api.no_proxy, and then the environment is not read at all, so a service behaves the same
 * whatever environment starts it. Without api.proxy: HTTPS_PROXY (else https_proxy), its user info
 * as credentials, and NO_PROXY (else no_proxy). Messages never quote a URL's credentials.
 */
function parseProxy(p: Problems, api: Obj, io: LoadEnv, readNamed: ReadNamed): ProxyConfig | undefined {
  const extras = PROXY_KEYS.filter((k) => k !== 'proxy' && api[k] !== undefined && api[k] !== null);
  const raw = api.proxy;
  if (raw === undefined || raw === null) {
    for (const k of extras) {
      p.add(join('api', k), 'applies to api.proxy only: set api.proxy too (with HTTPS_PROXY from the environment, its user info and NO_PROXY apply)');
    }
    return proxyFromEnvironment(p, io.env);
  }
  if (typeof raw !== 'string' || raw.trim() === '') {
    p.add('api.proxy', `must be a proxy URL like ${PROXY_EXAMPLE}, or none, got ${typeName(raw)}`);
    return undefined;
  }
  if (raw.trim().toLowerCase() === 'none') {
    for (const k of extras) p.add(join('api', k), 'has no use with api.proxy: none (no proxy); remove it');
    return undefined;
  }
  const parsed = parseProxyUrl(raw, { schemeOptional: false, allowCredentials: false, hostOk: (u) => safeOrigin(u) !== undefined });
  if ('problem' in parsed) p.add('api.proxy', parsed.problem);

  const username = api.proxy_username === undefined || api.proxy_username === null ? undefined : api.proxy_username;
  let user: string | undefined;
  if (username !== undefined) {
    // Basic authentication joins user and password with ':' (RFC 7617): a user cannot hold one.
    if (typeof username !== 'string' || username === '' || username.includes(':') || /\p{C}/u.test(username)) {
      p.add('api.proxy_username', `must be a non-empty user name without ':' or control characters, got ${typeof username === 'string' ? `a value of ${username.length} characters (not shown)` : typeName(username)}`);
    } else user = username;
  }
  const password = proxyPassword(p, api, io, readNamed);
  if (password && username === undefined) p.add('api', 'has a proxy password but no api.proxy_username; set the user too');

  const noProxy: string[] = [];
  const rawList = api.no_proxy;
  if (rawList !== undefined && rawList !== null) {
    const items: { path: string; text: unknown }[] = Array.isArray(rawList)
      ? rawList.map((text, i) => ({ path: join('api.no_proxy', i), text }))
      : typeof rawList === 'string'
        ? splitNoProxy(rawList).map((text) => ({ path: 'api.no_proxy', text }))
        : [];
    if (!Array.isArray(rawList) && typeof rawList !== 'string') {
      p.add('api.no_proxy', `must be a list of hosts (or one string of them, comma-separated), got ${typeName(rawList)}`);
    }
    for (const { path: at, text } of items) {
      const r = typeof text === 'string' ? parseNoProxyEntry(text) : { problem: 'must be a string' };
      if ('entry' in r) noProxy.push(r.entry);
      else p.add(at, `${r.problem}, got ${typeName(text)}`);
    }
  }
  if ('problem' in parsed) return undefined;
  return {
    url: parsed.url,
    source: 'api.proxy',
    ...(user !== undefined ? { username: user } : {}),
    ...(password ? { password } : {}),
    noProxy,
    ...(rawList !== undefined && rawList !== null ? { noProxySource: 'api.no_proxy' } : {}),
  };
}

/** api.proxy_password_env or api.proxy_password_file (at most one), read now; undefined when neither. */
function proxyPassword(p: Problems, api: Obj, io: LoadEnv, readNamed: ReadNamed): Secret | undefined {
  if (api.proxy_password_env !== undefined && api.proxy_password_file !== undefined) {
    p.add('api', 'has both proxy_password_env and proxy_password_file; keep one');
    return undefined;
  }
  if (api.proxy_password_env !== undefined) {
    const kp = 'api.proxy_password_env';
    const name = optString(p, 'api', api, 'proxy_password_env');
    if (name === undefined) return undefined;
    const v = ENV_NAME.test(name) ? io.env[name] : undefined;
    if (!v && (!ENV_NAME.test(name) || looksRandom(name))) {
      // Most likely the password itself, pasted here: say so without printing it.
      p.add(kp, `must be the name of an environment variable (letters, digits, _), got ${describeEnvName(name)}; set the password in a variable and name the variable here, or use api.proxy_password_file`);
      return undefined;
    }
    if (!v) {
      p.add(kp, `environment variable ${name} is not set or empty`);
      return undefined;
    }
    return new Secret(v, `environment variable ${describeEnvName(name)}`);
  }
  if (api.proxy_password_file !== undefined) {
    const kp = 'api.proxy_password_file';
    const file = optString(p, 'api', api, 'proxy_password_file');
    const f = file ? readNamed(kp, file, MAX_SECRET_FILE_BYTES) : undefined;
    if (!f) return undefined;
    const v = f.text?.trim(); // files written by editors or `echo` end in a newline
    if (v === undefined) p.add(kp, `${f.shown} is not UTF-8 text`);
    else if (!v) p.add(kp, `${f.shown} is empty`);
    else if (/[\r\n]/.test(v)) p.add(kp, `${f.shown} holds more than one line; put only the password in it`);
    else return new Secret(v, `file ${f.shown}`);
  }
  return undefined;
}

/**
 * HTTPS_PROXY / https_proxy (a missing scheme means http://, as curl reads it) with NO_PROXY /
 * no_proxy. A proxy URL the collector cannot use is a config problem (exit 2), not a silent
 * direct connection; NO_PROXY entries it does not understand are left out (the variable is shared
 * with other programs, which may read forms this one does not).
 */
function proxyFromEnvironment(p: Problems, env: NodeJS.ProcessEnv): ProxyConfig | undefined {
  const { proxy, noProxy } = proxyEnvironment(env);
  if (!proxy) return undefined;
  const parsed = parseProxyUrl(proxy.value, { schemeOptional: true, allowCredentials: true, hostOk: (u) => safeOrigin(u) !== undefined });
  if ('problem' in parsed) {
    p.add(`environment variable ${proxy.name}`, `${parsed.problem}; or set api.proxy in the config (none: no proxy)`);
    return undefined;
  }
  return {
    url: parsed.url,
    source: proxy.name,
    ...(parsed.username !== undefined ? { username: parsed.username } : {}),
    ...(parsed.password ? { password: new Secret(parsed.password, `the user info of ${proxy.name}`) } : {}),
    noProxy: noProxy ? parseNoProxy(noProxy.value).entries : [],
    ...(noProxy ? { noProxySource: noProxy.name } : {}),
  };
}

function parseForward(p: Problems, f: Obj, resolvePath: (f: string) => string, readNamed: ReadNamed): ForwardOutputConfig {
  const fp = 'output.forward';
  checkKeys(p, fp, f, ['host', 'port', 'unix_socket', 'tls', 'ack_timeout', 'max_frame_bytes', 'max_record_bytes', 'max_frames_in_flight']);
  const host = optString(p, fp, f, 'host') ?? DEFAULTS.forwardHost;
  if (!HOST.test(host)) p.add(join(fp, 'host'), `must be a host name or an IP address, got ${typeName(f.host)}`);
  const port = optInt(p, fp, f, 'port', 1, 65535) ?? DEFAULTS.forwardPort;
  const unixSocket = optString(p, fp, f, 'unix_socket');
  const ackTimeoutMs = duration(p, fp, f, 'ack_timeout', DEFAULTS.ackTimeoutMs, 100, 600_000);
  const maxFrameBytes = optInt(p, fp, f, 'max_frame_bytes', 4096, 64 * 1024 * 1024) ?? DEFAULTS.maxFrameBytes;
  // A record larger than max_frame_bytes travels alone in its own frame, so the two are not
  // ordered; 256 MiB bounds the memory one record may take (Fluent Bit's default buffer_max_size
  // is 6,144,000 B: raise it on the input too, reference forward-fluent-bit-devo.md §2).
  const maxRecordBytes = optInt(p, fp, f, 'max_record_bytes', 4096, 256 * 1024 * 1024) ?? DEFAULTS.maxRecordBytes;
  const maxFramesInFlight = optInt(p, fp, f, 'max_frames_in_flight', 1, 1024) ?? DEFAULTS.maxFramesInFlight;
  let tls: TlsClientConfig | undefined;
  if (f.tls !== undefined && f.tls !== false) {
    const tp = join(fp, 'tls');
    const t = f.tls === true ? {} : section(p, fp, f, 'tls');
    checkKeys(p, tp, t, ['ca_file', 'cert_file', 'key_file', 'server_name', 'verify']);
    const raw = (k: string) => optString(p, tp, t, k);
    const [caRaw, certRaw, keyRaw] = [raw('ca_file'), raw('cert_file'), raw('key_file')];
    // The sink reads these at its first connection; a missing one there wedged the collector.
    if (caRaw) certificatesIn(p, join(tp, 'ca_file'), readNamed(join(tp, 'ca_file'), caRaw, MAX_PEM_BYTES));
    const certF = certRaw ? readNamed(join(tp, 'cert_file'), certRaw, MAX_PEM_BYTES) : undefined;
    const keyF = keyRaw ? readNamed(join(tp, 'key_file'), keyRaw, MAX_PEM_BYTES) : undefined;
    const cert = certificatesIn(p, join(tp, 'cert_file'), certF)?.[0];
    const key = privateKeyIn(p, join(tp, 'key_file'), keyF);
    if (cert && key && certF && keyF && !cert.checkPrivateKey(key)) {
      p.add(join(tp, 'key_file'), `${keyF.shown} does not belong to ${join(tp, 'cert_file')} (${certF.shown})`);
    }
    tls = {
      caFile: caRaw ? resolvePath(caRaw) : undefined,
      certFile: certRaw ? resolvePath(certRaw) : undefined,
      keyFile: keyRaw ? resolvePath(keyRaw) : undefined,
      serverName: optString(p, tp, t, 'server_name'),
      verify: optBool(p, tp, t, 'verify') ?? true,
    };
    if (!!tls.certFile !== !!tls.keyFile) p.add(tp, 'cert_file and key_file go together (client certificate)');
    if (unixSocket) p.add(tp, 'TLS does not apply to a unix socket; remove one of them');
  }
  return { host, port, unixSocket: unixSocket ? resolvePath(unixSocket) : undefined, tls, ackTimeoutMs, maxFrameBytes, maxRecordBytes, maxFramesInFlight };
}
