import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { CollectorError } from '../errors.ts';
import { CONTENT_TYPES, isContentType, type ContentType } from '../management-api/content-types.ts';
import { CLOUDS, type CloudName } from './clouds.ts';
import { parseDuration } from './durations.ts';
import {
  DEFAULTS,
  Secret,
  type Config,
  type Credential,
  type ForwardOutputConfig,
  type TenantConfig,
  type TlsClientConfig,
} from './schema.ts';
import {
  Problems,
  checkKeys,
  isObj,
  join,
  optBool,
  optInt,
  optString,
  section,
  typeName,
  type Obj,
} from './validate.ts';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What the loader may touch outside the YAML tree; injectable for tests. */
export interface LoadEnv {
  env: NodeJS.ProcessEnv;
  readFile: (file: string) => string;
}
const realEnv: LoadEnv = { env: process.env, readFile: (f) => readFileSync(f, 'utf8') };

/** Command-line flags that override the file (`run --output ... --state ...`). */
export interface ConfigOverrides {
  output?: 'forward' | 'stdout';
  recordFormat?: 'record' | 'devo';
  forwardHost?: string;
  forwardPort?: number;
  statePath?: string;
}

/** Reads, parses and validates a config file. Throws CONFIG_INVALID listing every problem. */
export function loadConfig(file: string, overrides: ConfigOverrides = {}, io: LoadEnv = realEnv): Config {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = io.readFile(abs);
  } catch (err) {
    throw new CollectorError('CONFIG_INVALID', `cannot read config file ${abs}: ${(err as Error).message}`, {
      fatal: true,
    });
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    const msgs = doc.errors.map((e) => `  - ${e.message.split('\n')[0]}`).join('\n');
    throw new CollectorError('CONFIG_INVALID', `config ${abs} is not valid YAML:\n${msgs}`, { fatal: true });
  }
  return parseConfig(doc.toJS(), abs, overrides, io);
}

/** Validates a parsed YAML tree. Relative paths inside resolve against the config file's folder. */
export function parseConfig(tree: unknown, sourceFile: string, overrides: ConfigOverrides = {}, io: LoadEnv = realEnv): Config {
  const p = new Problems();
  const baseDir = path.dirname(sourceFile);
  const resolvePath = (f: string) => path.resolve(baseDir, f);
  const root: Obj = isObj(tree) ? tree : {};
  if (!isObj(tree)) p.add('(top level)', `must be a mapping, got ${typeName(tree)}`);
  checkKeys(p, '', root, ['tenants', 'output', 'routing', 'status', 'state', 'polling', 'api']);

  const readText = (keyPath: string, file: string): string | undefined => {
    try {
      return io.readFile(resolvePath(file));
    } catch (err) {
      p.add(keyPath, `cannot read ${resolvePath(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return undefined;
    }
  };

  // --- tenants
  const tenants: TenantConfig[] = [];
  const rawTenants = root.tenants;
  if (!Array.isArray(rawTenants) || rawTenants.length === 0) {
    p.add('tenants', rawTenants === undefined ? 'is required: a list with at least one tenant' : `must be a non-empty list, got ${typeName(rawTenants)}`);
  } else {
    rawTenants.forEach((t, i) => {
      const tp = join('tenants', i);
      if (!isObj(t)) return p.add(tp, `must be a mapping, got ${typeName(t)}`);
      const tenant = parseTenant(p, tp, t, io, readText);
      if (tenant) tenants.push(tenant);
    });
    const names = new Set<string>();
    tenants.forEach((t, i) => {
      if (names.has(t.name)) p.add(join(join('tenants', i), 'name'), `duplicate tenant name "${t.name}" (names key the state file)`);
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
  const forward = parseForward(p, section(p, 'output', out, 'forward'), resolvePath);

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

  // --- status
  const status = section(p, '', root, 'status');
  checkKeys(p, 'status', status, ['tag', 'interval', 'stall_after']);
  const statusTag = optString(p, 'status', status, 'tag') ?? DEFAULTS.statusTag;
  const statusInterval = duration(p, 'status', status, 'interval', DEFAULTS.statusIntervalMs, 1000, 86_400_000);
  const stallAfterMs = duration(p, 'status', status, 'stall_after', DEFAULTS.stallAfterMs, 60_000, 7 * 86_400_000);

  // --- state
  const state = section(p, '', root, 'state');
  checkKeys(p, 'state', state, ['path']);
  const statePath = resolvePath(optString(p, 'state', state, 'path') ?? DEFAULTS.statePath);

  // --- polling
  const polling = section(p, '', root, 'polling');
  checkKeys(p, 'polling', polling, ['interval', 'initial_lookback', 'overlap', 'sweep_interval', 'concurrency', 'request_timeout', 'max_attempts']);
  const intervalMs = duration(p, 'polling', polling, 'interval', DEFAULTS.pollIntervalMs, 1000, 86_400_000);
  const initialLookbackMs = duration(p, 'polling', polling, 'initial_lookback', DEFAULTS.initialLookbackMs, 60_000, DEFAULTS.maxLookbackMs);
  // At least 10 min: the API lists blobs minutes after their contentCreated; with less, those are missed.
  const overlapMs = duration(p, 'polling', polling, 'overlap', DEFAULTS.overlapMs, 600_000, 24 * 3_600_000);
  // 0 turns the sweep off; otherwise at least a minute (a sweep lists up to 7 windows per feed).
  const sweepIntervalMs = polling.sweep_interval === 0 || polling.sweep_interval === '0' ? 0 : duration(p, 'polling', polling, 'sweep_interval', DEFAULTS.sweepIntervalMs, 1000, 7 * 86_400_000);
  const concurrency = optInt(p, 'polling', polling, 'concurrency', 1, 64) ?? DEFAULTS.concurrency;
  const requestTimeoutMs = duration(p, 'polling', polling, 'request_timeout', DEFAULTS.requestTimeoutMs, 1000, 600_000);
  const maxAttempts = optInt(p, 'polling', polling, 'max_attempts', 1, 100) ?? DEFAULTS.maxAttempts;

  // --- api
  const api = section(p, '', root, 'api');
  checkKeys(p, 'api', api, ['ca_file']);
  const caFile = optString(p, 'api', api, 'ca_file');
  if (caFile) readText('api.ca_file', caFile);

  // --- overrides from the command line win over the file
  if (overrides.output) type = overrides.output;
  if (overrides.recordFormat) recordFormat = overrides.recordFormat;
  if ((overrides.forwardHost || overrides.forwardPort !== undefined) && forward.unixSocket) {
    p.add('--forward-host/--forward-port', `cannot apply: output.forward.unix_socket is set (${forward.unixSocket})`);
  }
  if (overrides.forwardHost) forward.host = overrides.forwardHost;
  if (overrides.forwardPort !== undefined) {
    if (!Number.isInteger(overrides.forwardPort) || overrides.forwardPort < 1 || overrides.forwardPort > 65535) {
      p.add('--forward-port', `must be a port number from 1 to 65535, got ${overrides.forwardPort}`);
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
    api: { caFile: caFile ? resolvePath(caFile) : undefined },
    sourceFile,
  };
}

function duration(p: Problems, path: string, obj: Obj, key: string, def: number, min: number, max: number): number {
  const v = obj[key];
  if (v === undefined || v === null) return def;
  const ms = parseDuration(v);
  if (ms === undefined) {
    p.add(join(path, key), `must be a duration like 30s, 5m, 2h, 7d (or seconds as a number), got ${typeName(v)}`);
    return def;
  }
  if (ms < min || ms > max) {
    p.add(join(path, key), `must be between ${min / 1000}s and ${max / 1000}s, got ${typeName(v)}`);
    return def;
  }
  return ms;
}

function parseTenant(
  p: Problems,
  tp: string,
  t: Obj,
  io: LoadEnv,
  readText: (keyPath: string, file: string) => string | undefined,
): TenantConfig | undefined {
  checkKeys(p, tp, t, [
    'name', 'tenant_id', 'client_id', 'cloud', 'api_url', 'login_url',
    'client_secret', 'client_secret_env', 'client_secret_file', 'certificate',
    'publisher_identifier', 'content_types',
  ]);
  const before = p.list.length;
  const tenantId = optString(p, tp, t, 'tenant_id');
  if (!tenantId) p.add(join(tp, 'tenant_id'), 'is required (the directory GUID of the tenant)');
  else if (!GUID.test(tenantId)) p.add(join(tp, 'tenant_id'), `must be a GUID like 11111111-2222-3333-4444-555555555555 (the API rejects anything else with AF20013), got ${notGuid(tenantId)}`);
  const clientId = optString(p, tp, t, 'client_id');
  if (!clientId) p.add(join(tp, 'client_id'), 'is required (the application (client) id of the app registration)');
  else if (!GUID.test(clientId)) p.add(join(tp, 'client_id'), `must be a GUID (the application (client) id), got ${notGuid(clientId)}`);

  // Cloud and hosts: a named cloud, or explicit URLs (which also override a named cloud).
  const cloudRaw = t.cloud ?? 'commercial';
  let cloud: CloudName | 'custom' = 'commercial';
  if (typeof cloudRaw !== 'string' || !(cloudRaw in CLOUDS)) {
    p.add(join(tp, 'cloud'), `must be one of ${Object.keys(CLOUDS).join(', ')}, got ${typeName(cloudRaw)}`);
  } else cloud = cloudRaw as CloudName;
  const hosts = CLOUDS[cloud as CloudName] ?? CLOUDS.commercial;
  const apiUrl = httpsUrl(p, join(tp, 'api_url'), optString(p, tp, t, 'api_url')) ?? hosts.apiUrl;
  const loginUrl = httpsUrl(p, join(tp, 'login_url'), optString(p, tp, t, 'login_url')) ?? hosts.loginUrl;
  if (t.api_url !== undefined || t.login_url !== undefined) cloud = 'custom';

  // Credential: exactly one of the secret forms or a certificate.
  const forms = ['client_secret', 'client_secret_env', 'client_secret_file', 'certificate'].filter((k) => t[k] !== undefined);
  let credential: Credential | undefined;
  if (forms.length === 0) {
    p.add(tp, 'needs a credential: one of client_secret, client_secret_env, client_secret_file, certificate');
  } else if (forms.length > 1) {
    p.add(tp, `has more than one credential (${forms.join(', ')}); keep exactly one`);
  } else if (forms[0] === 'client_secret') {
    const v = t.client_secret;
    if (typeof v !== 'string' || v === '') p.add(join(tp, 'client_secret'), 'must be a non-empty string');
    else credential = { kind: 'secret', secret: new Secret(v, `${tp}.client_secret`) };
  } else if (forms[0] === 'client_secret_env') {
    const name = optString(p, tp, t, 'client_secret_env');
    if (name) {
      const v = io.env[name];
      if (!v) p.add(join(tp, 'client_secret_env'), `environment variable ${name} is not set or empty`);
      else credential = { kind: 'secret', secret: new Secret(v, `environment variable ${name}`) };
    }
  } else if (forms[0] === 'client_secret_file') {
    const file = optString(p, tp, t, 'client_secret_file');
    const text = file ? readText(join(tp, 'client_secret_file'), file) : undefined;
    if (text !== undefined) {
      const v = text.trim(); // files written by editors or `echo` end in a newline
      if (!v) p.add(join(tp, 'client_secret_file'), `${file} is empty`);
      else credential = { kind: 'secret', secret: new Secret(v, `file ${file}`) };
    }
  } else {
    const cp = join(tp, 'certificate');
    const c = section(p, tp, t, 'certificate');
    checkKeys(p, cp, c, ['private_key_file', 'certificate_file']);
    const keyFile = optString(p, cp, c, 'private_key_file');
    const certFile = optString(p, cp, c, 'certificate_file');
    if (!keyFile) p.add(join(cp, 'private_key_file'), 'is required (PEM private key of the certificate registered on the app)');
    if (!certFile) p.add(join(cp, 'certificate_file'), 'is required (PEM certificate registered on the app)');
    const key = keyFile ? readText(join(cp, 'private_key_file'), keyFile) : undefined;
    const cert = certFile ? readText(join(cp, 'certificate_file'), certFile) : undefined;
    if (key !== undefined && !/-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(key)) {
      p.add(join(cp, 'private_key_file'), `${keyFile} holds no PEM private key`);
    } else if (key !== undefined && key.includes('ENCRYPTED PRIVATE KEY')) {
      p.add(join(cp, 'private_key_file'), `${keyFile} is encrypted; give an unencrypted PEM key (protect the file with permissions)`);
    }
    if (cert !== undefined && !cert.includes('-----BEGIN CERTIFICATE-----')) {
      p.add(join(cp, 'certificate_file'), `${certFile} holds no PEM certificate`);
    }
    if (key && cert && keyFile && certFile && p.list.length === before) {
      credential = { kind: 'certificate', privateKey: new Secret(key, `file ${keyFile}`), certificatePem: cert, privateKeyFile: keyFile, certificateFile: certFile };
    }
  }

  const publisherIdentifier = optString(p, tp, t, 'publisher_identifier') ?? tenantId ?? '';
  if (t.publisher_identifier !== undefined && publisherIdentifier && !GUID.test(publisherIdentifier)) {
    p.add(join(tp, 'publisher_identifier'), `must be a GUID (your own tenant id), got ${notGuid(publisherIdentifier)}`);
  }

  let contentTypes: ContentType[] = [...CONTENT_TYPES];
  if (t.content_types !== undefined) {
    const ct = t.content_types;
    if (!Array.isArray(ct) || ct.length === 0) {
      p.add(join(tp, 'content_types'), `must be a non-empty list, got ${typeName(ct)}`);
    } else {
      contentTypes = [];
      ct.forEach((v, i) => {
        if (!isContentType(v)) p.add(join(join(tp, 'content_types'), i), `must be one of ${CONTENT_TYPES.join(', ')}, got ${typeName(v)}`);
        else if (contentTypes.includes(v)) p.add(join(join(tp, 'content_types'), i), `${v} is listed twice`);
        else contentTypes.push(v);
      });
    }
  }
  const name = optString(p, tp, t, 'name') ?? tenantId ?? `tenant${tp}`;
  if (p.list.length > before || !tenantId || !clientId || !credential) return undefined;
  return { name, tenantId, clientId, cloud, apiUrl, loginUrl, credential, publisherIdentifier, contentTypes };
}

/**
 * Describes a value that should have been a GUID without printing it: a client secret pasted
 * into the wrong field (easy to do from the portal) must not end up in logs.
 */
function notGuid(v: string): string {
  return `a value of ${v.length} characters that is not a GUID`;
}

function httpsUrl(p: Problems, keyPath: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    p.add(keyPath, `must be a URL like https://manage.office.com, got "${v}"`);
    return undefined;
  }
  if (u.protocol !== 'https:') {
    p.add(keyPath, `must use https (Entra ID and the API are HTTPS only), got "${v}"`);
    return undefined;
  }
  if (u.pathname !== '/' || u.search) {
    p.add(keyPath, `must be a bare scheme://host[:port] without a path, got "${v}"`);
    return undefined;
  }
  return u.origin;
}

function parseForward(p: Problems, f: Obj, resolvePath: (f: string) => string): ForwardOutputConfig {
  const fp = 'output.forward';
  checkKeys(p, fp, f, ['host', 'port', 'unix_socket', 'tls', 'ack_timeout', 'max_frame_bytes', 'max_record_bytes', 'max_frames_in_flight']);
  const host = optString(p, fp, f, 'host') ?? DEFAULTS.forwardHost;
  const port = optInt(p, fp, f, 'port', 1, 65535) ?? DEFAULTS.forwardPort;
  const unixSocket = optString(p, fp, f, 'unix_socket');
  const ackTimeoutMs = duration(p, fp, f, 'ack_timeout', DEFAULTS.ackTimeoutMs, 100, 600_000);
  const maxFrameBytes = optInt(p, fp, f, 'max_frame_bytes', 4096, 64 * 1024 * 1024) ?? DEFAULTS.maxFrameBytes;
  const maxRecordBytes = optInt(p, fp, f, 'max_record_bytes', 4096, 256 * 1024 * 1024) ?? DEFAULTS.maxRecordBytes;
  const maxFramesInFlight = optInt(p, fp, f, 'max_frames_in_flight', 1, 1024) ?? DEFAULTS.maxFramesInFlight;
  let tls: TlsClientConfig | undefined;
  if (f.tls !== undefined && f.tls !== false) {
    const tp = join(fp, 'tls');
    const t = f.tls === true ? {} : section(p, fp, f, 'tls');
    checkKeys(p, tp, t, ['ca_file', 'cert_file', 'key_file', 'server_name', 'verify']);
    const file = (k: string) => {
      const v = optString(p, tp, t, k);
      return v ? resolvePath(v) : undefined;
    };
    tls = {
      caFile: file('ca_file'),
      certFile: file('cert_file'),
      keyFile: file('key_file'),
      serverName: optString(p, tp, t, 'server_name'),
      verify: optBool(p, tp, t, 'verify') ?? true,
    };
    if (!!tls.certFile !== !!tls.keyFile) p.add(tp, 'cert_file and key_file go together (client certificate)');
    if (unixSocket) p.add(tp, 'TLS does not apply to a unix socket; remove one of them');
  }
  return { host, port, unixSocket: unixSocket ? resolvePath(unixSocket) : undefined, tls, ackTimeoutMs, maxFrameBytes, maxRecordBytes, maxFramesInFlight };
}
