/**
 * `simulate`: the embedded Management API simulator as a long-running process (DESIGN.md "The
 * embedded simulator"). Flags become SimulatorOptions here, every problem reported at once as a
 * usage error; faults, clock offset and late release can be staged from the command line so a
 * collector's handling of each is reproducible with `--seed`.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatDuration, parseDuration } from '../config/durations.ts';
import { simulatorConfigTree, simulatorConfigYaml, simulatorTenantName } from '../config/simulator-config.ts';
import {
  DEFAULT_SLOW_MS,
  faultApplies,
  FAULT_KIND_NAMES,
  FAULT_KINDS,
  FAULT_ROUTES,
  formatFault,
  generateClientCertificate,
  maxLateByMs,
  MAX_LATENCY_MS,
  MAX_TENANTS,
  parseCorpus,
  parseFaultSpec,
  startSimulator,
  type Fault,
  type Simulator,
  type SimulatorOptions,
} from '../simulator/index.ts';
import { CollectorError } from '../errors.ts';
import { EXIT, reportFatal } from './common.ts';
import type { Argv } from 'yargs';

/** The `simulate` flags, as simulatorOptions() takes them (demo passes a subset). */
export interface SimulateArgs {
  port: number;
  seed: number;
  /** Records per tenant. */
  records: number;
  /** How many tenants the one server serves (SimulatorOptions.tenants; default 1). */
  tenants?: number;
  corpus?: string;
  span: number;
  late: number;
  /** With lateRelease: durations late blobs are dated before their release (each may hold a comma list). */
  lateBy?: string[];
  /** Seconds after start when the late blobs are released. */
  lateRelease?: number;
  pageSize?: number;
  /** `KIND[@ROUTE][:COUNT][@TENANT_INDEX]` faults armed at start. */
  faults?: string[];
  /** Delay of 'slow' faults in ms (default DEFAULT_SLOW_MS). */
  slowMs?: number;
  /** Retry-After seconds on '429' and '503' faults (default: none). */
  retryAfter?: number;
  /** The API clock's offset from the local clock, a duration with an optional sign (`-2h`). */
  clockOffset?: string;
  /** Every API call answered this many ms after it arrived (SimulatorOptions.latencyMs). */
  latencyMs?: number;
  /** API calls allowed a minute per PublisherIdentifier, then 403 AF429 (SimulatorOptions.requestsPerMinute). */
  requestsPerMinute?: number;
  writeConfig?: string;
  statePath?: string;
  /** Credential in the written config: the simulator's client secret, or a fresh certificate. */
  credential?: 'secret' | 'certificate';
  /** PEM certificates to register on the simulated app (for a key pair you made yourself). */
  clientCertificates?: string[];
}

/** The `--help` text after the options: every fault kind with its default route. */
export function faultHelp(): string {
  // Short lines: yargs wraps the epilogue at the terminal width without keeping indentation.
  const width = Math.max(...FAULT_KIND_NAMES.map((k) => k.length));
  const lines = FAULT_KIND_NAMES.flatMap((k) => {
    const routes = FAULT_ROUTES.filter((r) => r === 'any' || faultApplies(k, r));
    const only = routes.length < FAULT_ROUTES.length ? `; routes: ${routes.join(', ')}` : '';
    return [`  ${k.padEnd(width)}  default route: ${FAULT_KINDS[k].defaultRoute}${only}`, `      ${FAULT_KINDS[k].summary}`];
  });
  return [
    'Faults: --fault KIND[@ROUTE][:COUNT][@TENANT_INDEX], COUNT default 1.',
    `ROUTE: ${FAULT_ROUTES.join(', ')} ('any' = the next request the kind applies to).`,
    'TENANT_INDEX: 1 to --tenants; only that tenant is hit (default: any tenant, the count shared).',
    'Kinds:',
    ...lines,
    'Example: --fault 503@content:2 --fault invalid-json --fault subscription-disabled --seed 7',
    'Only tenant 7 throttled: --tenants 50 --write-config sim.yaml --fault 403-AF429@content:1000000@7',
  ].join('\n');
}

/** The `simulate` command's flags (yargs builder); cli.ts only declares the command. */
export function simulateOptions<T>(y: Argv<T>) {
  return y
    .option('port', { type: 'number', default: 0, describe: 'port on 127.0.0.1 (0 = any free port)' })
    .option('seed', { type: 'number', default: 1, describe: 'seed for deterministic data, ids and late-blob choice' })
    .option('records', { type: 'number', default: 2000, describe: 'number of synthetic records (of each tenant)' })
    .option('tenants', { type: 'number', default: 1, describe: `serve N tenants from the one server (1-${MAX_TENANTS}), each with its own ids, secret, records, quota and faults; above 1 needs --write-config, where the secrets go (tenants sim-01..sim-N)` })
    .option('corpus', { type: 'string', describe: 'serve exactly the records of this NDJSON file, one JSON object a line (default: synthetic records)', requiresArg: true })
    .option('span', { type: 'number', default: 20, describe: 'spread the blobs over the past HOURS' })
    .option('late', { type: 'number', default: 0, describe: 'FRACTION of blobs listed late: 2-30 min after contentCreated, or with --late-by/--late-release at the release time' })
    .option('late-by', { type: 'string', array: true, describe: `DURATION[,DURATION...] late blobs are dated before their release, assigned in turn (e.g. 30h,6d; at most ${formatDuration(maxLateByMs())}; needs --late and --late-release; default: none)`, requiresArg: true })
    .option('late-release', { type: 'number', describe: 'SECONDS after start when the --late blobs become listable (needs --late-by; default: none)', requiresArg: true })
    .option('page-size', { type: 'number', default: 32, describe: 'blobs per listing page before NextPageUri' })
    .option('latency-ms', { type: 'number', default: 0, describe: 'answer every API call (start, stop, list, content, blob; never the token endpoint) this many ms after it arrived, as the real API takes 100-800 ms' })
    .option('requests-per-minute', { type: 'number', describe: 'API calls allowed a minute per PublisherIdentifier, then 403 AF429 (the real quota is about 2000; default: no quota)', requiresArg: true })
    .option('clock-offset', { type: 'string', default: '0s', describe: "the API's clock = local clock + DURATION, sign allowed (e.g. 90s, -2h, 3d): skew as a collector meets it", requiresArg: true })
    .option('fault', { type: 'string', array: true, describe: 'arm a fault at start: KIND[@ROUTE][:COUNT], repeatable, served in the order given (kinds and default routes below; default: none)', requiresArg: true })
    .option('slow-ms', { type: 'number', default: DEFAULT_SLOW_MS, describe: "how long a 'slow' fault waits before answering, in ms" })
    .option('retry-after', { type: 'number', describe: "SECONDS in a Retry-After header on '429' and '503' faults (default: no header; the API documents none)", requiresArg: true })
    .option('write-config', { type: 'string', describe: 'also write a collector config pointing at the simulator to FILE (default: none; the CA goes to a temporary folder removed on exit)', requiresArg: true })
    .option('state', { type: 'string', describe: 'state.path to put in the written config (default: FILE.state.json beside it)', requiresArg: true })
    .option('credential', { choices: ['secret', 'certificate'] as const, default: 'secret' as const, describe: 'credential in the written config (certificate: a fresh key pair beside it, registered with the simulator)' })
    .option('client-certificate', { type: 'string', array: true, describe: 'PEM certificate FILE to register on the simulated app, repeatable (default: none)', requiresArg: true })
    .epilogue(faultHelp());
}

/** Parsed `simulate` flags → SimulateArgs. */
export function simulateArgs(a: Awaited<ReturnType<typeof simulateOptions>['argv']>): SimulateArgs {
  return {
    port: a.port, seed: a.seed, records: a.records, tenants: a.tenants, corpus: a.corpus, span: a.span, late: a.late, lateBy: a['late-by'], lateRelease: a['late-release'],
    pageSize: a['page-size'], faults: a.fault, slowMs: a['slow-ms'], retryAfter: a['retry-after'], clockOffset: a['clock-offset'],
    latencyMs: a['latency-ms'], requestsPerMinute: a['requests-per-minute'], writeConfig: a['write-config'], statePath: a.state, credential: a.credential, clientCertificates: a['client-certificate'],
  };
}

/** `-2h` → -7200000; a duration of config/durations.ts with an optional sign. Undefined if not one. */
export function parseSignedDuration(text: string): number | undefined {
  const m = /^\s*([+-]?)(.*)$/.exec(text)!;
  const ms = parseDuration(m[2]!);
  if (ms === undefined) return undefined;
  return m[1] === '-' ? -ms : ms;
}

/** `--late-by` values (repeatable, each a comma list) → milliseconds, or the problems found. */
function parseLateBy(values: string[], problems: string[]): number[] {
  const out: number[] = [];
  const max = maxLateByMs();
  for (const text of values.flatMap((v) => v.split(',')).map((v) => v.trim())) {
    const ms = text === '' ? undefined : parseDuration(text);
    if (ms === undefined || ms <= 0) problems.push(`--late-by '${text}' is not a positive duration (e.g. 30h, 6d)`);
    else if (ms > max) problems.push(`--late-by ${text} is too far back: at most ${formatDuration(max)} (the API keeps content 7 days, and a late blob must still be listable at its release)`);
    else out.push(ms);
  }
  return out;
}

/** The most records one simulate process makes, all tenants together (they are held in memory). */
const MAX_RECORDS = 5_000_000;

/** Builds simulator options from command-line values, checking each with a clear message. */
export function simulatorOptions(a: SimulateArgs): SimulatorOptions {
  const problems: string[] = [];
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) problems.push(`--port must be 0..65535, got ${a.port}`);
  if (!Number.isSafeInteger(a.seed)) problems.push(`--seed must be a whole number, got ${a.seed}`);
  if (!Number.isInteger(a.records) || a.records < 0 || a.records > MAX_RECORDS) problems.push(`--records must be an integer 0..${MAX_RECORDS}, got ${a.records}`);
  const tenants = a.tenants ?? 1;
  if (!(Number.isInteger(tenants) && tenants >= 1 && tenants <= MAX_TENANTS)) problems.push(`--tenants must be a whole number from 1 to ${MAX_TENANTS}, got ${a.tenants}`);
  else {
    if (Number.isInteger(a.records) && tenants * a.records > MAX_RECORDS && !a.corpus) problems.push(`--tenants ${tenants} x --records ${a.records} is over ${MAX_RECORDS} records in all: ask for fewer records a tenant`);
    // The other tenants' secrets go into the written config (0600), never to stdout.
    if (tenants > 1 && !a.writeConfig) problems.push('--tenants above 1 needs --write-config FILE: every tenant\'s secret is written there, not printed');
  }
  if (!(a.span > 0 && a.span <= 7 * 24 - 1)) problems.push(`--span must be more than 0 and at most 167 hours (the API keeps 7 days), got ${a.span}`);
  if (!(a.late >= 0 && a.late <= 1)) problems.push(`--late must be a fraction from 0 to 1, got ${a.late}`);
  if (a.pageSize !== undefined && !(Number.isInteger(a.pageSize) && a.pageSize >= 1)) problems.push(`--page-size must be a positive integer, got ${a.pageSize}`);
  if (a.slowMs !== undefined && !(Number.isInteger(a.slowMs) && a.slowMs >= 0)) problems.push(`--slow-ms must be a whole number of milliseconds >= 0, got ${a.slowMs}`);
  if (a.retryAfter !== undefined && !(Number.isInteger(a.retryAfter) && a.retryAfter >= 0)) problems.push(`--retry-after must be a whole number of seconds >= 0, got ${a.retryAfter}`);
  if (a.latencyMs !== undefined && !(Number.isInteger(a.latencyMs) && a.latencyMs >= 0 && a.latencyMs <= MAX_LATENCY_MS)) problems.push(`--latency-ms must be a whole number of milliseconds from 0 to ${MAX_LATENCY_MS}, got ${a.latencyMs}`);
  if (a.requestsPerMinute !== undefined && !(Number.isInteger(a.requestsPerMinute) && a.requestsPerMinute >= 1)) problems.push(`--requests-per-minute must be a whole number above 0, got ${a.requestsPerMinute}`);
  const faults: Fault[] = [];
  for (const spec of a.faults ?? []) {
    const r = parseFaultSpec(spec, { delayMs: a.slowMs, retryAfterSeconds: a.retryAfter, tenants: Number.isInteger(tenants) && tenants >= 1 ? tenants : undefined });
    if ('problem' in r) problems.push(`--fault ${r.problem}`);
    else faults.push(r.fault);
  }
  let clockOffsetMs = 0;
  if (a.clockOffset !== undefined) {
    const ms = parseSignedDuration(a.clockOffset);
    if (ms === undefined) problems.push(`--clock-offset must be a duration with an optional sign (e.g. 90s, -2h, 3d), got '${a.clockOffset}'`);
    else clockOffsetMs = ms;
  }
  let lateRelease: SimulatorOptions['lateRelease'];
  const hasBy = (a.lateBy ?? []).length > 0;
  if (hasBy || a.lateRelease !== undefined) {
    const byMs = parseLateBy(a.lateBy ?? [], problems);
    if (!hasBy) problems.push('--late-release needs --late-by DURATION[,DURATION...] (how long before the release the late blobs are dated)');
    if (a.lateRelease === undefined) problems.push('--late-by needs --late-release SECONDS (when the late blobs become listable)');
    else if (!(Number.isFinite(a.lateRelease) && a.lateRelease >= 0)) problems.push(`--late-release must be a number of seconds >= 0, got ${a.lateRelease}`);
    if (!(a.late > 0)) problems.push('--late-by/--late-release need --late FRACTION above 0 (the share of blobs released late)');
    lateRelease = { fraction: a.late, byMs, releaseAfterMs: Math.round((a.lateRelease ?? 0) * 1000) };
  }
  let corpus;
  if (a.corpus) {
    try {
      corpus = parseCorpus(readFileSync(a.corpus, 'utf8'), a.corpus);
    } catch (err) {
      problems.push(`--corpus: ${(err as Error).message}`);
    }
  }
  const clientCertificates: string[] = [];
  for (const f of a.clientCertificates ?? []) {
    try {
      const pem = readFileSync(f, 'utf8');
      if (!pem.includes('-----BEGIN CERTIFICATE-----')) problems.push(`--client-certificate ${f}: holds no PEM certificate`);
      else clientCertificates.push(pem);
    } catch (err) {
      problems.push(`--client-certificate ${f}: ${(err as Error).message}`);
    }
  }
  if (a.credential === 'certificate' && !a.writeConfig) problems.push('--credential certificate needs --write-config (the key pair is written next to the config)');
  if (problems.length) throw new CollectorError('CONFIG_INVALID', problems.join('\n'), { fatal: true });
  return {
    port: a.port,
    seed: a.seed,
    records: a.records,
    ...(tenants !== 1 ? { tenants } : {}),
    corpus,
    spanHours: a.span,
    // With a late release, --late is the share released late; the minutes-late mode is off.
    lateFraction: lateRelease ? 0 : a.late,
    lateRelease,
    pageSize: a.pageSize,
    clientCertificates,
    faults,
    clockOffsetMs,
    ...(a.latencyMs ? { latencyMs: a.latencyMs } : {}),
    ...(a.requestsPerMinute !== undefined ? { requestsPerMinute: a.requestsPerMinute } : {}),
  };
}

/**
 * The one line a person sees when the port cannot be bound, or undefined for other errors.
 * Node's listen errors carry `code` (EADDRINUSE, EACCES, EADDRNOTAVAIL).
 */
export function listenFailure(err: unknown, host: string, port: number): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const where = `cannot listen on ${host}:${port}`;
  if (code === 'EADDRINUSE') return `${where}: port in use (EADDRINUSE); choose another --port or 0`;
  if (code === 'EACCES') return `${where}: permission denied (EACCES); choose a --port above 1023 or 0`;
  if (code === 'EADDRNOTAVAIL') return `${where}: address not available (EADDRNOTAVAIL)`;
  return undefined;
}

/** Writes the simulator's CA where a collector can read it; returns its path. */
export function writeCa(sim: Simulator, dir: string, prefix = 'simulator'): string {
  mkdirSync(dir, { recursive: true });
  const caFile = path.join(dir, `${prefix}-ca.pem`);
  writeFileSync(caFile, sim.caPem);
  return caFile;
}

/** `simulate`: the embedded Management API until SIGINT/SIGTERM; one JSON line on stdout when ready. */
export async function simulateCommand(a: SimulateArgs): Promise<number> {
  let options: SimulatorOptions;
  let sim: Simulator;
  try {
    options = simulatorOptions(a);
    sim = await startSimulator(options);
  } catch (err) {
    const listen = listenFailure(err, '127.0.0.1', a.port);
    if (listen === undefined) return reportFatal(err);
    process.stderr.write(`m365-forward: ${listen}\n`);
    return EXIT.failed;
  }
  // Without --write-config the CA goes to a folder of our own, removed on exit: the certificate
  // is made at start and is worthless once the simulator stops.
  const tempDir = a.writeConfig ? undefined : mkdtempSync(path.join(os.tmpdir(), 'm365-forward-sim-'));
  const dir = tempDir ?? path.dirname(path.resolve(a.writeConfig!));
  // Files beside the config are named after it, so several simulators can share a folder.
  const prefix = a.writeConfig ? path.basename(a.writeConfig).replace(/\.ya?ml$/i, '') : 'simulator';
  try {
    const caFile = writeCa(sim, dir, prefix);
    const ready = readyLine(sim, options, caFile);
    if (a.writeConfig) {
      const file = path.resolve(a.writeConfig);
      const tree = simulatorConfigTree({ ...sim, caFile }, { spanHours: a.span, statePath: a.statePath ?? path.join(dir, `${prefix}.state.json`) });
      if (a.credential === 'certificate') {
        // A throwaway key pair for trying certificate auth: written beside the config (0600), never committed.
        const cert = await generateClientCertificate({ commonName: 'm365-forward simulator client' });
        const keyFile = path.join(dir, `${prefix}-client.key`);
        const certFile = path.join(dir, `${prefix}-client.crt`);
        writeFileSync(keyFile, cert.keyPem, { mode: 0o600 });
        writeFileSync(certFile, cert.certPem);
        // One key pair registered on every tenant's app: each tenant entry names it.
        sim.registerCertificate(cert.certPem);
        for (const tenant of tree.tenants as Record<string, unknown>[]) {
          delete tenant.client_secret;
          tenant.certificate = { private_key_file: keyFile, certificate_file: certFile };
        }
        ready.certificateFile = certFile;
      }
      writeFileSync(file, simulatorConfigYaml(tree), { mode: 0o600 });
      ready.configFile = file;
    }
    process.stdout.write(JSON.stringify(ready) + '\n');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    // What the collector asked of it (requests by route, throttled, the API call span): the last
    // line, so a bench or a person reads what a run cost the API side (test/bench/run.ts).
    process.stdout.write(JSON.stringify({ stats: finalStats(sim) }) + '\n');
    return EXIT.ok;
  } catch (err) {
    return reportFatal(err);
  } finally {
    await sim.close();
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  }
}

/** The stats line's content: every request, and with several tenants each tenant's own counters. */
function finalStats(sim: Simulator): Record<string, unknown> {
  const all: Record<string, unknown> = { ...sim.stats() };
  if (sim.tenants.length > 1) {
    const count = sim.tenants.length;
    all.tenants = sim.tenants.map((t) => ({ name: simulatorTenantName(t.index, count), tenantId: t.tenantId, ...t.stats() }));
  }
  return all;
}

/**
 * The ready line: where the simulator is, its credentials, what it serves and which faults and
 * clock it plays. With several tenants, `tenants` lists each one's config name, ids and records;
 * their secrets are only in the written config (the top-level credentials stay tenant 1's, as
 * with one tenant).
 */
function readyLine(sim: Simulator, o: SimulatorOptions, caFile: string): Record<string, unknown> {
  const blobs = sim.blobs();
  const count = (bs: readonly { recordCount: number }[]) => bs.reduce((n, b) => n + b.recordCount, 0);
  const ready: Record<string, unknown> = {
    apiUrl: sim.apiUrl,
    loginUrl: sim.loginUrl,
    tenantId: sim.tenantId,
    clientId: sim.clientId,
    clientSecret: sim.clientSecret,
    caFile,
    records: count(blobs),
    blobs: blobs.length,
    faults: (o.faults ?? []).map(formatFault),
    clockOffsetMs: o.clockOffsetMs ?? 0,
  };
  if (sim.tenants.length > 1) {
    ready.tenants = sim.tenants.map((t) => {
      const own = t.blobs();
      return { name: simulatorTenantName(t.index, sim.tenants.length), tenantId: t.tenantId, clientId: t.clientId, records: count(own), blobs: own.length };
    });
  }
  if (o.latencyMs) ready.latencyMs = o.latencyMs;
  if (o.requestsPerMinute !== undefined) ready.requestsPerMinute = o.requestsPerMinute;
  if (o.lateRelease) {
    const nowMs = sim.now();
    const held = blobs.filter((b) => b.availableAt > nowMs);
    ready.lateRelease = {
      blobs: held.length,
      records: held.reduce((n, b) => n + b.recordCount, 0),
      releaseAt: held.length ? new Date(held[0]!.availableAt).toISOString() : null,
    };
  }
  return ready;
}
