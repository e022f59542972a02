import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { loadConfig, parseConfig, type LoadEnv } from '../../src/config/load.ts';
import { parseDuration } from '../../src/config/durations.ts';
import { CollectorError } from '../../src/errors.ts';

const T = '11111111-2222-3333-4444-555555555555';
const C = '66666666-7777-8888-9999-000000000000';
const env = (files: Record<string, string> = {}, vars: Record<string, string> = {}): LoadEnv => ({
  env: vars,
  readFile: (f) => {
    const hit = Object.entries(files).find(([k]) => f.endsWith(k));
    if (!hit) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
    return hit[1];
  },
});

function problems(tree: unknown, io = env()): string {
  try {
    parseConfig(tree, '/etc/m365/config.yaml', {}, io);
  } catch (err) {
    assert.ok(err instanceof CollectorError);
    assert.equal(err.code, 'CONFIG_INVALID');
    return err.message;
  }
  assert.fail('config was accepted');
}

test('a minimal config gets every default', () => {
  const c = parseConfig({ tenants: [{ tenant_id: T, client_id: C, client_secret: 's3cr3t-value' }] }, '/etc/m365/config.yaml', {}, env());
  assert.equal(c.tenants[0]!.apiUrl, 'https://manage.office.com');
  assert.equal(c.tenants[0]!.loginUrl, 'https://login.microsoftonline.com');
  assert.equal(c.tenants[0]!.publisherIdentifier, T);
  assert.equal(c.tenants[0]!.contentTypes.length, 5);
  assert.equal(c.output.type, 'forward');
  assert.equal(c.output.forward.port, 24224);
  assert.equal(c.output.forward.maxFrameBytes, 1024 * 1024);
  assert.equal(c.polling.initialLookbackMs, 24 * 3600_000);
  assert.equal(c.status.intervalMs, 60_000);
  assert.equal(c.state.path, path.resolve('/etc/m365/state/m365-forward.state.json'));
});

test('every problem is reported at once, with its key path', () => {
  const msg = problems({
    tenants: [
      { tenant_id: 'contoso', client_id: C, client_secret: 'x', content_types: ['Audit.Exchange', 'Audit.Nope'], clud: 'gcc' },
      { tenant_id: T, client_id: C },
    ],
    output: { type: 'kafka', forward: { port: 99999 } },
    polling: { initial_lookback: '8d', interval: 'soon' },
    extra: 1,
  });
  for (const expected of [
    'tenants[0].tenant_id: must be a GUID',
    'tenants[0].content_types[1]: must be one of',
    'tenants[0].clud: unknown key',
    'tenants[1]: needs a credential',
    'output.type: must be "forward" or "stdout"',
    'output.forward.port: must be an integer from 1 to 65535',
    'polling.initial_lookback: must be between',
    'polling.interval: must be a duration',
    'extra: unknown key',
  ]) {
    assert.ok(msg.includes(expected), `missing "${expected}" in:\n${msg}`);
  }
});

test('secrets: inline, environment, file; never printed', () => {
  const fromEnv = parseConfig({ tenants: [{ tenant_id: T, client_id: C, client_secret_env: 'SECRET_VAR' }] }, '/x/c.yaml', {}, env({}, { SECRET_VAR: 'env-secret-123' }));
  const cred = fromEnv.tenants[0]!.credential;
  assert.equal(cred.kind, 'secret');
  assert.equal(cred.kind === 'secret' && cred.secret.reveal(), 'env-secret-123');
  const printed = JSON.stringify(fromEnv) + inspect(fromEnv, { depth: 10 }) + String(cred.kind === 'secret' && cred.secret);
  assert.ok(!printed.includes('env-secret-123'), 'secret leaked into output');

  const fromFile = parseConfig({ tenants: [{ tenant_id: T, client_id: C, client_secret_file: 'secret.txt' }] }, '/x/c.yaml', {}, env({ 'secret.txt': 'file-secret\n' }));
  const fc = fromFile.tenants[0]!.credential;
  assert.equal(fc.kind === 'secret' && fc.secret.reveal(), 'file-secret');

  const missing = problems({ tenants: [{ tenant_id: T, client_id: C, client_secret_env: 'NOPE' }] });
  assert.match(missing, /client_secret_env: environment variable NOPE is not set/);
  const two = problems({ tenants: [{ tenant_id: T, client_id: C, client_secret: 'a-secret-value', client_secret_env: 'X' }] });
  assert.match(two, /more than one credential/);
  assert.ok(!two.includes('a-secret-value'));
});

test('certificate credential needs both PEM files', () => {
  const msg = problems({ tenants: [{ tenant_id: T, client_id: C, certificate: { private_key_file: 'k.pem' } }] }, env({ 'k.pem': 'not a key' }));
  assert.match(msg, /certificate.certificate_file: is required/);
  assert.match(msg, /k.pem holds no PEM private key/);
});

test('clouds and explicit hosts', () => {
  const c = parseConfig({ tenants: [{ tenant_id: T, client_id: C, client_secret: 'x', cloud: 'gcc-high' }] }, '/x/c.yaml', {}, env());
  assert.equal(c.tenants[0]!.apiUrl, 'https://manage.office365.us');
  assert.equal(c.tenants[0]!.loginUrl, 'https://login.microsoftonline.us');
  const msg = problems({ tenants: [{ tenant_id: T, client_id: C, client_secret: 'x', api_url: 'http://manage.office.com' }] });
  assert.match(msg, /api_url: must use https/);
});

test('command-line overrides win over the file', () => {
  const c = parseConfig({ tenants: [{ tenant_id: T, client_id: C, client_secret: 'x' }], output: { type: 'forward' } }, '/x/c.yaml', { output: 'stdout', forwardPort: 25000, statePath: '/tmp/s.json' }, env());
  assert.equal(c.output.type, 'stdout');
  assert.equal(c.output.forward.port, 25000);
  assert.equal(c.state.path, '/tmp/s.json');
});

test('YAML syntax errors and duplicate keys are reported with the file', () => {
  const io = env({ 'bad.yaml': 'tenants:\n  - tenant_id: a\n    tenant_id: b\n' });
  assert.throws(() => loadConfig('/x/bad.yaml', {}, io), /not valid YAML/);
});

test('durations', () => {
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration(90), 90_000);
  assert.equal(parseDuration('7d'), 604_800_000);
  assert.equal(parseDuration('soon'), undefined);
});

test('every example in conf/ loads with the real loader', () => {
  const dir = path.resolve(import.meta.dirname, '../../conf');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 3);
  // A key made at run time (no key is ever committed); the loader only checks the PEM shape here.
  const fakePem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const fakeCert = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  for (const f of files) {
    const io: LoadEnv = {
      env: { M365_CLIENT_SECRET: 'x', LAB_CLIENT_SECRET: 'y' },
      readFile: (p) => {
        if (p.startsWith(dir)) return readFileSync(p, 'utf8');
        if (p.endsWith('.key')) return fakePem;
        if (p.endsWith('.crt') || p.endsWith('.pem')) return fakeCert;
        if (p.endsWith('.secret')) return 'file-secret\n';
        throw new Error(`unexpected read ${p}`);
      },
    };
    const c = loadConfig(path.join(dir, f), {}, io);
    assert.ok(c.tenants.length >= 1, f);
  }
});

test('record_format: record (default) or devo, overridable', () => {
  const base = { tenants: [{ tenant_id: T, client_id: C, client_secret: 'x' }] };
  assert.equal(parseConfig(base, '/x/c.yaml', {}, env()).output.recordFormat, 'record');
  assert.equal(parseConfig({ ...base, output: { record_format: 'devo' } }, '/x/c.yaml', {}, env()).output.recordFormat, 'devo');
  assert.equal(parseConfig(base, '/x/c.yaml', { recordFormat: 'devo' }, env()).output.recordFormat, 'devo');
  assert.match(problems({ ...base, output: { record_format: 'syslog' } }), /output.record_format: must be "record" or "devo"/);
});
