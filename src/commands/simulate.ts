import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { simulatorConfigTree, simulatorConfigYaml } from '../config/simulator-config.ts';
import { generateClientCertificate, parseCorpus, startSimulator, type Simulator, type SimulatorOptions } from '../simulator/index.ts';
import { CollectorError } from '../errors.ts';
import { EXIT, reportFatal } from './common.ts';
import type { Argv } from 'yargs';

export interface SimulateArgs {
  port: number;
  seed: number;
  records: number;
  corpus?: string;
  span: number;
  late: number;
  pageSize?: number;
  writeConfig?: string;
  statePath?: string;
  /** Credential in the written config: the simulator's client secret, or a fresh certificate. */
  credential?: 'secret' | 'certificate';
  /** PEM certificates to register on the simulated app (for a key pair you made yourself). */
  clientCertificates?: string[];
}

/** The `simulate` command's flags (yargs builder); cli.ts only declares the command. */
export function simulateOptions<T>(y: Argv<T>) {
  return y
    .option('port', { type: 'number', default: 0, describe: 'port (0 = any free port)' })
    .option('seed', { type: 'number', default: 1, describe: 'seed for deterministic data' })
    .option('records', { type: 'number', default: 2000, describe: 'number of synthetic records' })
    .option('corpus', { type: 'string', describe: 'serve exactly the records of this NDJSON file (one JSON object a line)', requiresArg: true })
    .option('span', { type: 'number', default: 20, describe: 'spread the blobs over the past HOURS' })
    .option('late', { type: 'number', default: 0, describe: 'FRACTION of blobs listed only some minutes after their contentCreated' })
    .option('page-size', { type: 'number', describe: 'blobs per listing page before NextPageUri' })
    .option('write-config', { type: 'string', describe: 'also write a collector config pointing at the simulator to FILE', requiresArg: true })
    .option('state', { type: 'string', describe: 'state.path to put in the written config', requiresArg: true })
    .option('credential', { choices: ['secret', 'certificate'] as const, default: 'secret' as const, describe: 'credential in the written config (certificate: a fresh key pair beside it, registered with the simulator)' })
    .option('client-certificate', { type: 'string', array: true, describe: 'PEM certificate FILE to register on the simulated app (repeatable)', requiresArg: true });
}

/** Parsed `simulate` flags → SimulateArgs. */
export function simulateArgs(a: Awaited<ReturnType<typeof simulateOptions>['argv']>): SimulateArgs {
  return {
    port: a.port, seed: a.seed, records: a.records, corpus: a.corpus, span: a.span, late: a.late, pageSize: a['page-size'],
    writeConfig: a['write-config'], statePath: a.state, credential: a.credential, clientCertificates: a['client-certificate'],
  };
}

/** Builds simulator options from command-line values, checking each with a clear message. */
export function simulatorOptions(a: SimulateArgs): SimulatorOptions {
  const problems: string[] = [];
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) problems.push(`--port must be 0..65535, got ${a.port}`);
  if (!Number.isInteger(a.records) || a.records < 0 || a.records > 5_000_000) problems.push(`--records must be an integer 0..5000000, got ${a.records}`);
  if (!(a.span > 0 && a.span <= 7 * 24 - 1)) problems.push(`--span must be more than 0 and at most 167 hours (the API keeps 7 days), got ${a.span}`);
  if (!(a.late >= 0 && a.late <= 1)) problems.push(`--late must be a fraction from 0 to 1, got ${a.late}`);
  if (a.pageSize !== undefined && !(Number.isInteger(a.pageSize) && a.pageSize >= 1)) problems.push(`--page-size must be a positive integer, got ${a.pageSize}`);
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
  return { port: a.port, seed: a.seed, records: a.records, corpus, spanHours: a.span, lateFraction: a.late, pageSize: a.pageSize, clientCertificates };
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
  let sim: Simulator;
  try {
    sim = await startSimulator(simulatorOptions(a));
  } catch (err) {
    return reportFatal(err);
  }
  const dir = a.writeConfig ? path.dirname(path.resolve(a.writeConfig)) : mkdtempSync(path.join(os.tmpdir(), 'm365-forward-sim-'));
  // Files beside the config are named after it, so several simulators can share a folder.
  const prefix = a.writeConfig ? path.basename(a.writeConfig).replace(/\.ya?ml$/i, '') : 'simulator';
  const caFile = writeCa(sim, dir, prefix);
  const ready: Record<string, unknown> = {
    apiUrl: sim.apiUrl,
    loginUrl: sim.loginUrl,
    tenantId: sim.tenantId,
    clientId: sim.clientId,
    clientSecret: sim.clientSecret,
    caFile,
    records: sim.blobs().reduce((n, b) => n + b.records.length, 0),
    blobs: sim.blobs().length,
  };
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
      sim.registerCertificate(cert.certPem);
      const tenant = (tree.tenants as Record<string, unknown>[])[0]!;
      delete tenant.client_secret;
      tenant.certificate = { private_key_file: keyFile, certificate_file: certFile };
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
  await sim.close();
  return EXIT.ok;
}
