import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import { loadConfig, parseConfig, readRegularFile, type LoadEnv } from '../../src/config/load.ts';
import { isZeroDuration, parseDuration } from '../../src/config/durations.ts';
import { typeName } from '../../src/config/validate.ts';
import { CollectorError } from '../../src/errors.ts';
import { generateClientCertificate } from '../../src/simulator/tls.ts';

const T = '11111111-2222-3333-4444-555555555555';
const C = '66666666-7777-8888-9999-000000000000';
const env = (files: Record<string, string | Uint8Array> = {}, vars: Record<string, string> = {}): LoadEnv => ({
  env: vars,
  readFile: (f) => {
    const hit = Object.entries(files).find(([k]) => f.endsWith(k));
    if (!hit) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
    return hit[1];
  },
});
/** The real reader, no environment variables. */
const realIo = (vars: Record<string, string> = {}): LoadEnv => ({ env: vars, readFile: readRegularFile });

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CollectorError, `not a CollectorError: ${inspect(err)}`);
    assert.equal(err.code, 'CONFIG_INVALID');
    assert.equal(err.fatal, true);
    return err.message;
  }
  assert.fail('config was accepted');
}
function problems(tree: unknown, io = env()): string {
  return configError(() => parseConfig(tree, '/etc/m365/config.yaml', {}, io));
}
function has(msg: string, ...expected: string[]): void {
  for (const e of expected) assert.ok(msg.includes(e), `missing "${e}" in:\n${msg}`);
}

/** A tenant with an inline secret, to which a test adds what it checks. */
const tenant = (extra: Record<string, unknown> = {}) => ({ tenant_id: T, client_id: C, client_secret: 'x', ...extra });

test('a minimal config gets every default', () => {
  const c = parseConfig({ tenants: [{ tenant_id: T, client_id: C, client_secret: 's3cr3t-value' }] }, '/etc/m365/config.yaml', {}, env());
  assert.equal(c.tenants[0]!.apiUrl, 'https://manage.office.com');
  assert.equal(c.tenants[0]!.loginUrl, 'https://login.microsoftonline.com');
  assert.equal(c.tenants[0]!.publisherIdentifier, T);
  assert.equal(c.tenants[0]!.contentTypes.length, 5);
  assert.equal(c.output.type, 'forward');
  assert.equal(c.output.forward.port, 24224);
  assert.equal(c.output.forward.maxFrameBytes, 1024 * 1024);
  assert.equal(c.output.forward.maxRecordBytes, 6_000_000);
  assert.equal(c.polling.initialLookbackMs, 24 * 3600_000);
  assert.equal(c.polling.sweepIntervalMs, 3600_000);
  assert.equal(c.status.intervalMs, 60_000);
  assert.equal(c.status.stallAfterMs, 30 * 60_000);
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
  has(
    msg,
    'tenants[0].tenant_id: must be a GUID',
    'tenants[0].content_types[1]: must be one of',
    'tenants[0].clud: unknown key',
    'tenants[1]: needs a credential',
    'output.type: must be "forward" or "stdout", got string "kafka"',
    'output.forward.port: must be an integer from 1 to 65535, got number 99999',
    'polling.initial_lookback: must be between 1m and 7d',
    'polling.interval: must be a duration like 30s, 5m, 2h, 7d (or seconds as a number), got string "soon"',
    'extra: unknown key',
  );
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
  const c = parseConfig({ tenants: [tenant({ cloud: 'gcc-high' })] }, '/x/c.yaml', {}, env());
  assert.equal(c.tenants[0]!.apiUrl, 'https://manage.office365.us');
  assert.equal(c.tenants[0]!.loginUrl, 'https://login.microsoftonline.us');
  const sim = parseConfig({ tenants: [tenant({ api_url: 'https://127.0.0.1:8443', login_url: 'https://[::1]:8443/' })] }, '/x/c.yaml', {}, env());
  assert.equal(sim.tenants[0]!.apiUrl, 'https://127.0.0.1:8443');
  assert.equal(sim.tenants[0]!.loginUrl, 'https://[::1]:8443');
  assert.equal(sim.tenants[0]!.cloud, 'custom');
  has(problems({ tenants: [tenant({ api_url: 'http://manage.office.com' })] }), 'api_url: must use https', 'got http://manage.office.com');
  has(problems({ tenants: [tenant({ cloud: 'gcc-hihg' })] }), 'tenants[0].cloud: must be one of commercial, gcc, gcc-high, dod, china, got "gcc-hihg"');
  // Inherited names of Object.prototype are not clouds (`in` accepted them, leaving no hosts).
  for (const cloud of ['constructor', 'toString', '__proto__']) {
    has(problems({ tenants: [tenant({ cloud })] }), 'tenants[0].cloud: must be one of');
  }
});

test('command-line overrides win over the file', () => {
  const c = parseConfig({ tenants: [tenant()], output: { type: 'forward' } }, '/x/c.yaml', { output: 'stdout', forwardPort: 25000, statePath: '/tmp/s.json' }, env());
  assert.equal(c.output.type, 'stdout');
  assert.equal(c.output.forward.port, 25000);
  assert.equal(c.state.path, '/tmp/s.json');
  const msg = configError(() => parseConfig({ tenants: [tenant()], output: { forward: { unix_socket: '/run/fb.sock' } } }, '/x/c.yaml', { forwardPort: 1 }, env()));
  has(msg, '--forward-host/--forward-port: cannot apply: output.forward.unix_socket is set (/run/fb.sock)');
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
  for (const zero of [0, '0', '0s', '0m', ' 0.0h ']) assert.equal(isZeroDuration(zero), true, String(zero));
  for (const notZero of [1, '0.1ms', '10s', 'off', false, null, undefined]) assert.equal(isZeroDuration(notZero), false, String(notZero));
});

test('record_format: record (default) or devo, overridable', () => {
  const base = { tenants: [tenant()] };
  assert.equal(parseConfig(base, '/x/c.yaml', {}, env()).output.recordFormat, 'record');
  assert.equal(parseConfig({ ...base, output: { record_format: 'devo' } }, '/x/c.yaml', {}, env()).output.recordFormat, 'devo');
  assert.equal(parseConfig(base, '/x/c.yaml', { recordFormat: 'devo' }, env()).output.recordFormat, 'devo');
  assert.match(problems({ ...base, output: { record_format: 'syslog' } }), /output.record_format: must be "record" or "devo"/);
});

describe('files named by the config are read and checked at load', () => {
  let dir = '';
  let app: { certPem: string; keyPem: string };
  let other: { certPem: string; keyPem: string };
  const f = (name: string) => path.join(dir, name);

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'm365-config-test-'));
    // Key pairs made at run time: no key or certificate is ever committed.
    [app, other] = await Promise.all([generateClientCertificate(), generateClientCertificate()]);
    writeFileSync(f('app.crt'), app.certPem);
    writeFileSync(f('app.key'), app.keyPem, { mode: 0o600 });
    writeFileSync(f('chain.crt'), app.certPem + other.certPem);
    writeFileSync(f('other.crt'), other.certPem);
    writeFileSync(f('other.key'), other.keyPem, { mode: 0o600 });
    writeFileSync(f('cert-then-key.pem'), app.certPem + app.keyPem);
    writeFileSync(f('app.der'), new X509Certificate(app.certPem).raw);
    writeFileSync(f('garbage.crt'), 'this is not a certificate\n');
    // A CERTIFICATE block whose body is not X.509 (the base64 of "hello").
    writeFileSync(f('damaged.crt'), '-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n');
    const encrypted = generateKeyPairSync('rsa', {
      modulusLength: 1024,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'run-time-only' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    writeFileSync(f('encrypted.key'), encrypted.privateKey);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(f('ec.key'), ec.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    writeFileSync(f('rsa1024.key'), small.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(f('good.secret'), 'file-secret\n');
    writeFileSync(f('empty.secret'), ' \n');
    writeFileSync(f('two-lines.secret'), 'line-one\nline-two\n');
    mkdirSync(f('a-folder'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const load = (tree: Record<string, unknown>) => parseConfig(tree, f('config.yaml'), {}, realIo());
  const loadError = (tree: Record<string, unknown>) => configError(() => load(tree));
  const withTls = (tls: Record<string, unknown>) => ({ tenants: [tenant()], output: { forward: { tls } } });

  test('good files load; relative paths resolve against the config folder', () => {
    const c = load({
      tenants: [{ tenant_id: T, client_id: C, certificate: { private_key_file: 'app.key', certificate_file: './app.crt' } }],
      output: { forward: { tls: { ca_file: 'chain.crt', cert_file: f('app.crt'), key_file: './app.key' } } },
      api: { ca_file: './chain.crt' },
    });
    assert.deepEqual(c.output.forward.tls, { caFile: f('chain.crt'), certFile: f('app.crt'), keyFile: f('app.key'), serverName: undefined, verify: true });
    assert.equal(c.api.caFile, f('chain.crt'));
    const cred = c.tenants[0]!.credential;
    assert.equal(cred.kind, 'certificate');
    assert.ok(cred.kind === 'certificate' && cred.certificatePem === app.certPem && cred.privateKey.reveal() === app.keyPem);
    assert.ok(cred.kind === 'certificate' && cred.privateKeyFile === f('app.key'));
  });

  test('output.forward.tls: missing, a directory, not a regular file, not PEM, encrypted, mismatched', () => {
    has(loadError(withTls({ cert_file: '/etc/x.crt', key_file: 'app.key' })), 'output.forward.tls.cert_file: /etc/x.crt does not exist');
    has(loadError(withTls({ ca_file: 'a-folder' + '/' })), `output.forward.tls.ca_file: ${f('a-folder')} is a directory, not a file`);
    has(loadError(withTls({ ca_file: '/dev/null' })), 'output.forward.tls.ca_file: /dev/null is not a regular file');
    has(loadError(withTls({ ca_file: './garbage.crt' })), `output.forward.tls.ca_file: ${f('garbage.crt')} holds no PEM certificate`);
    has(loadError(withTls({ ca_file: './damaged.crt' })), `output.forward.tls.ca_file: ${f('damaged.crt')} holds a damaged PEM certificate`);
    has(loadError(withTls({ ca_file: './app.der' })), `output.forward.tls.ca_file: ${f('app.der')} is binary, not PEM text`);
    has(loadError(withTls({ cert_file: './app.crt', key_file: './encrypted.key' })), `output.forward.tls.key_file: ${f('encrypted.key')} is encrypted`);
    has(loadError(withTls({ cert_file: './app.crt', key_file: './app.crt' })), `output.forward.tls.key_file: ${f('app.crt')} holds no PEM private key`);
    has(loadError(withTls({ cert_file: './app.crt', key_file: './cert-then-key.pem' })), 'has another PEM block before the private key');
    const mismatch = loadError(withTls({ cert_file: './app.crt', key_file: './other.key' }));
    has(mismatch, `output.forward.tls.key_file: ${f('other.key')} does not belong to output.forward.tls.cert_file (${f('app.crt')})`);
    // Every problem at once, and never a byte of a key.
    const all = loadError(withTls({ ca_file: 'nope.crt', cert_file: './app.crt', key_file: './other.key' }));
    has(all, 'tls.ca_file: ', 'tls.key_file: ');
    for (const pem of [app.keyPem, other.keyPem]) assert.ok(!all.includes(pem.split('\n')[1]!), 'key material in the message');
  });

  test('api.ca_file and the tenant certificate get the same checks; Entra needs RSA of 2048 bits or more', () => {
    has(loadError({ tenants: [tenant()], api: { ca_file: './garbage.crt' } }), `api.ca_file: ${f('garbage.crt')} holds no PEM certificate`);
    has(loadError({ tenants: [tenant()], api: { ca_file: './a-folder/' } }), 'api.ca_file: ', 'is a directory, not a file');
    const cert = (private_key_file: string, certificate_file: string) => loadError({ tenants: [{ tenant_id: T, client_id: C, certificate: { private_key_file, certificate_file } }] });
    has(cert('./other.key', './app.crt'), `tenants[0].certificate.private_key_file: ${f('other.key')} does not belong to tenants[0].certificate.certificate_file (${f('app.crt')})`);
    has(cert('./ec.key', './app.crt'), 'tenants[0].certificate.private_key_file: ', 'is an ec key; Entra ID client certificates must be RSA');
    has(cert('./rsa1024.key', './app.crt'), 'is an RSA key of 1024 bits; Entra ID needs 2048 bits or more');
    has(cert('./app.key', './damaged.crt'), `tenants[0].certificate.certificate_file: ${f('damaged.crt')} holds a damaged PEM certificate`);
    has(cert('./missing.key', './missing.crt'), `private_key_file: ${f('missing.key')} does not exist`, `certificate_file: ${f('missing.crt')} does not exist`);
    has(cert('~/app.key', './app.crt'), 'private_key_file: starts with "~/", which is not expanded');
  });

  test('client_secret_file: exists, is a file, is not empty, is one line', () => {
    const c = load({ tenants: [{ tenant_id: T, client_id: C, client_secret_file: './good.secret' }] });
    const cred = c.tenants[0]!.credential;
    assert.equal(cred.kind === 'secret' && cred.secret.reveal(), 'file-secret');
    const secretFile = (file: string) => loadError({ tenants: [{ tenant_id: T, client_id: C, client_secret_file: file }] });
    has(secretFile('./nope.secret'), `tenants[0].client_secret_file: ${f('nope.secret')} does not exist`);
    has(secretFile('./a-folder/'), 'is a directory, not a file');
    has(secretFile('./empty.secret'), `${f('empty.secret')} is empty`);
    const two = secretFile('./two-lines.secret');
    has(two, 'holds more than one line');
    assert.ok(!two.includes('line-one') && !two.includes('line-two'));
  });
});

describe('no value that could be a secret is printed', () => {
  // What an Entra client secret looks like (40 characters, a `~` at the 6th), and one without `~`.
  const SECRET = 'abc8Q~' + 'dEf0123456789ghijkLMNopqrstu.-wxyz';
  const PLAIN = 'Zq8Xw2Lm9Rt4Vb7Nc1Kd5Hg3Jf6Ps0Ty2Ue8Wa4S';
  assert.equal(SECRET.length, 40);
  assert.equal(PLAIN.length, 40);

  /** Fails when any 10 characters of the secret, in any case, appear in the message. */
  function assertNoLeak(msg: string, secret: string): void {
    const low = msg.toLowerCase();
    for (let i = 0; i + 10 <= secret.length; i++) {
      assert.ok(!low.includes(secret.slice(i, i + 10).toLowerCase()), `secret fragment "${secret.slice(i, i + 10)}" in:\n${msg}`);
    }
  }

  for (const [label, secret] of [['with ~', SECRET], ['without ~', PLAIN]] as const) {
    test(`a secret (${label}) pasted into any field stays out of the message`, () => {
      const msg = problems(
        {
          tenants: [
            { tenant_id: T, client_id: C, client_secret_env: secret },
            { tenant_id: secret, client_id: secret, client_secret_file: secret, publisher_identifier: secret },
            { tenant_id: T, client_id: C, client_secret: 'x', cloud: secret, api_url: secret, login_url: `https://user:${secret}@login.example.com/x?s=${secret}`, name: secret },
            { tenant_id: T, client_id: C, client_secret: 'x', api_url: `https://${secret}`, content_types: [secret], [secret]: 1 },
            { tenant_id: T, client_id: C, client_secret: secret, certificate: { private_key_file: secret } },
          ],
          output: { type: secret, record_format: secret, forward: { host: 5, unix_socket: 7, tls: { ca_file: secret, verify: secret } } },
          routing: { tag_template: secret, workload_tables: { Exchange: `${secret} x` } },
          status: { interval: secret, tag: 3 },
          polling: { sweep_interval: secret, overlap: secret },
          state: { path: 9 },
        },
        env({}, { M365_CLIENT_SECRET: 'unused' }),
      );
      assertNoLeak(msg, secret);
      has(
        msg,
        'tenants[0].client_secret_env: must be the name of an environment variable',
        'tenants[1].client_secret_file: the path given (40 characters, not shown',
        'tenants[2].cloud: must be one of',
        'tenants[2].api_url: must be a URL like https://manage.office.com, got a value of 40 characters that is not a URL',
        'tenants[2].login_url: must be a bare scheme://host[:port] without a path, query or user, got https://login.example.com followed by more',
        'tenants[3].api_url: must have a DNS name or an IP address as its host',
        'tenants[3].<a key of 40 characters>: unknown key',
        'tenants[4]: has more than one credential',
        'output.type: must be "forward" or "stdout", got a string of 40 characters (not shown)',
        'output.forward.tls.ca_file: the path given (40 characters',
        'routing.workload_tables.Exchange: must be a table name',
        'status.interval: must be a duration',
        'polling.sweep_interval: must be a duration',
      );
    });
  }

  test('a secret shaped like a variable name is described, not printed', () => {
    const msg = problems({ tenants: [{ tenant_id: T, client_id: C, client_secret_env: PLAIN }] });
    has(msg, 'client_secret_env: must be the name of an environment variable (letters, digits, _), got a value of 40 characters that looks like a secret, not a variable name');
    assertNoLeak(msg, PLAIN);
    has(problems({ tenants: [{ tenant_id: T, client_id: C, client_secret_env: SECRET }] }), 'got a value of 40 characters that is not an environment variable name');
  });

  test('typeName shows numbers, booleans and short names, and never a long or random string', () => {
    assert.equal(typeName(5), 'number 5');
    assert.equal(typeName(true), 'boolean true');
    assert.equal(typeName('soon'), 'string "soon"');
    assert.equal(typeName('Audit.Nope'), 'string "Audit.Nope"');
    assert.equal(typeName(null), 'null');
    assert.equal(typeName([1]), 'a list');
    assert.equal(typeName({}), 'a mapping');
    assert.equal(typeName(SECRET), 'a string of 40 characters (not shown)');
    assert.equal(typeName('abc8Q~dEf'), 'a string of 9 characters (not shown)');
    assert.equal(typeName('Zq8Xw2Lm9Rt4Vb7N'), 'a string of 16 characters (not shown)');
  });

  test('YAML parser messages that quote the source are redacted', () => {
    for (const text of [`%YAML ${SECRET}\n---\na: 1\n`, `tenants: |${SECRET}\n  x\n`, `tenants: *${SECRET}\n`]) {
      const msg = configError(() => loadConfig('/x/c.yaml', {}, env({ 'c.yaml': text })));
      has(msg, 'is not valid YAML');
      assertNoLeak(msg, SECRET);
    }
  });
});

test('two entries for the same tenant may not collect the same content type', () => {
  const other = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
  const msg = problems({
    tenants: [
      { name: 'a', tenant_id: other, client_id: C, client_secret: 'x', content_types: ['Audit.Exchange', 'Audit.General'] },
      { name: 'b', tenant_id: T, client_id: C, client_secret: 'x' },
      // The same tenant id in upper case: Entra ids are case-insensitive.
      { name: 'c', tenant_id: other.toUpperCase(), client_id: C, client_secret: 'x', content_types: ['DLP.All', 'Audit.General', 'Audit.Exchange'] },
    ],
  });
  has(msg, 'tenants[2].tenant_id: is the same tenant as tenants[0] and both collect Audit.General, Audit.Exchange: every record would be sent twice');
  assert.ok(!msg.includes('tenants[1].tenant_id'));
  // Disjoint content types (e.g. a second app registration for DLP.All) are fine.
  const c = parseConfig(
    {
      tenants: [
        { name: 'audit', tenant_id: T, client_id: C, client_secret: 'x', content_types: ['Audit.Exchange', 'Audit.General'] },
        { name: 'dlp', tenant_id: T.toUpperCase(), client_id: C, client_secret: 'y', content_types: ['DLP.All'] },
      ],
    },
    '/x/c.yaml',
    {},
    env(),
  );
  assert.equal(c.tenants.length, 2);
  // An entry without content_types asks for all five, so it overlaps any other entry of its tenant,
  // and is found even when another of its keys is wrong (every problem at once).
  has(
    problems({ tenants: [tenant({ name: 'one' }), tenant({ name: 'two', content_types: ['DLP.All'], cloud: 'nowhere' })] }),
    'tenants[1].tenant_id: is the same tenant as tenants[0] and both collect DLP.All',
    'tenants[1].cloud: must be one of',
  );
});

describe('hostile or broken config files', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'm365-config-file-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('an alias bomb ("billion laughs") is a config error, not a crash', () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 10; i++) {
      const [prev, name] = [String.fromCharCode(96 + i), String.fromCharCode(97 + i)];
      lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const msg = configError(() => loadConfig('/x/bomb.yaml', {}, env({ 'bomb.yaml': lines.join('\n') })));
    has(msg, 'config /x/bomb.yaml is not valid YAML', 'aliases (*name) expand to more than 100 copies');
  });

  test('deep nesting is refused before the parser can overflow its stack', () => {
    // Twice in one process: after one stack overflow inside the parser, a second deep parse
    // aborted the whole process (see MAX_NESTING in load.ts).
    for (const text of ['['.repeat(10_000) + ']'.repeat(10_000), '- '.repeat(5000) + 'x', '['.repeat(200_000)]) {
      has(configError(() => loadConfig('/x/deep.yaml', {}, env({ 'deep.yaml': text }))), 'nested more than 100 levels deep at line 1');
    }
    const block = Array.from({ length: 150 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n') + '\n';
    has(configError(() => loadConfig('/x/deep.yaml', {}, env({ 'deep.yaml': block }))), 'nested more than 100 levels deep at line 102');
    // Normal nesting, brackets inside strings and comments, and block scalars do not count.
    const ok = `tenants:\n  - {tenant_id: "${T}", client_id: '${C}', client_secret: "[[[[{{{{"}  # [[[[[[\nrouting:\n  tag_template: |\n${'    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{table}\n'}`;
    assert.equal(loadConfig('/x/ok.yaml', {}, env({ 'ok.yaml': ok })).tenants[0]!.tenantId, T);
  });

  test('a config path that is missing, a directory, binary, not UTF-8 or over 1 MiB is one clear line', () => {
    const file = (name: string, content: string | Uint8Array) => {
      writeFileSync(path.join(dir, name), content);
      return path.join(dir, name);
    };
    const cases: [string, string][] = [
      [path.join(dir, 'missing.yaml'), 'does not exist'],
      [dir, 'is a directory, not a file'],
      ['/dev/null', 'is not a regular file'],
      [file('latin1.yaml', Buffer.from('# caf\xe9\ntenants: []\n', 'latin1')), 'is not UTF-8 text'],
      [file('binary.yaml', Buffer.from([0x74, 0x3a, 0x20, 0x00, 0x01, 0x02])), 'is not UTF-8 text'],
      [file('huge.yaml', `# ${'x'.repeat(1024 * 1024)}\ntenants: []\n`), 'is larger than 1048576 bytes'],
    ];
    for (const [p, expected] of cases) {
      const msg = configError(() => loadConfig(p, {}, realIo()));
      assert.ok(msg.startsWith(`config file ${path.resolve(p)} ${expected}`), msg);
      assert.ok(!msg.includes('\n'), `not one line: ${msg}`);
    }
    // A UTF-8 byte order mark is fine.
    const bom = file('bom.yaml', `\ufefftenants:\n  - {tenant_id: ${T}, client_id: ${C}, client_secret: x}\n`);
    assert.equal(loadConfig(bom, {}, realIo()).tenants.length, 1);
  });

  test('the real reader refuses what is not a regular file, and what is too large', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return (err as NodeJS.ErrnoException).code;
      }
      return 'no error';
    };
    writeFileSync(path.join(dir, 'ten.txt'), '0123456789');
    assert.equal(readRegularFile(path.join(dir, 'ten.txt'), 10).toString(), '0123456789');
    assert.equal(code(() => readRegularFile(path.join(dir, 'ten.txt'), 9)), 'EFBIG');
    assert.equal(code(() => readRegularFile(dir, 100)), 'EISDIR');
    assert.equal(code(() => readRegularFile('/dev/zero', 100)), 'ENOTREG');
    assert.equal(code(() => readRegularFile(path.join(dir, 'nope'), 100)), 'ENOENT');
  });
});

describe('new keys: polling.sweep_interval, output.forward.max_record_bytes, status.stall_after', () => {
  const cfg = (extra: Record<string, unknown>) => parseConfig({ tenants: [tenant()], ...extra }, '/x/c.yaml', {}, env());

  test('polling.sweep_interval: a duration from 5s to 7d, or 0 to turn the sweep off', () => {
    for (const off of [0, '0', '0s']) assert.equal(cfg({ polling: { sweep_interval: off } }).polling.sweepIntervalMs, 0, String(off));
    assert.equal(cfg({ polling: { sweep_interval: '30m' } }).polling.sweepIntervalMs, 1_800_000);
    assert.equal(cfg({ polling: { sweep_interval: 120 } }).polling.sweepIntervalMs, 120_000);
    assert.equal(cfg({ polling: { sweep_interval: '10s' } }).polling.sweepIntervalMs, 10_000);
    has(problems({ tenants: [tenant()], polling: { sweep_interval: '2s' } }), 'polling.sweep_interval: must be between 5s and 7d (or 0 to turn the sweep off), got string "2s"');
    has(problems({ tenants: [tenant()], polling: { sweep_interval: '8d' } }), 'polling.sweep_interval: must be between 5s and 7d');
    has(problems({ tenants: [tenant()], polling: { sweep_interval: 'off' } }), 'polling.sweep_interval: must be a duration like 30s, 5m, 2h, 7d (or seconds as a number) (or 0 to turn the sweep off)');
  });

  test('output.forward.max_record_bytes: an integer from 4096 to 256 MiB, independent of max_frame_bytes', () => {
    assert.equal(cfg({ output: { forward: { max_record_bytes: 20_000_000, max_frame_bytes: 65536 } } }).output.forward.maxRecordBytes, 20_000_000);
    // Smaller than max_frame_bytes is allowed: a record between the two goes in a frame of its own.
    assert.equal(cfg({ output: { forward: { max_record_bytes: 8192 } } }).output.forward.maxRecordBytes, 8192);
    for (const bad of [4095, 256 * 1024 * 1024 + 1, 1.5, '6MB']) {
      has(problems({ tenants: [tenant()], output: { forward: { max_record_bytes: bad } } }), 'output.forward.max_record_bytes: must be an integer from 4096 to 268435456');
    }
  });

  test('status.stall_after: a duration from 1m to 7d, longer than polling.interval', () => {
    assert.equal(cfg({ status: { stall_after: '2h' } }).status.stallAfterMs, 7_200_000);
    has(problems({ tenants: [tenant()], status: { stall_after: '10s' } }), 'status.stall_after: must be between 1m and 7d, got string "10s"');
    has(problems({ tenants: [tenant()], status: { stall_after: '5m' }, polling: { interval: '5m' } }), 'status.stall_after: must be longer than polling.interval (5m), got 5m: set it to a few poll intervals');
    has(problems({ tenants: [tenant()], polling: { interval: '1h' } }), 'status.stall_after: must be longer than polling.interval (1h), got 30m (the default)');
    assert.equal(cfg({ polling: { interval: '1h' }, status: { stall_after: '3h' } }).status.stallAfterMs, 3 * 3_600_000);
  });
});

test('every example in conf/ loads with the real loader', async () => {
  const dir = path.resolve(import.meta.dirname, '../../conf');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 3);
  // A key pair made at run time (no key is ever committed) stands in for every PEM file named.
  const pair = await generateClientCertificate();
  for (const f of files) {
    const io: LoadEnv = {
      env: { M365_CLIENT_SECRET: 'x', LAB_CLIENT_SECRET: 'y' },
      readFile: (p, max) => {
        if (p.startsWith(dir)) return readRegularFile(p, max);
        if (p.endsWith('.key')) return pair.keyPem;
        if (p.endsWith('.crt') || p.endsWith('.pem')) return pair.certPem;
        if (p.endsWith('.secret')) return 'file-secret\n';
        throw new Error(`unexpected read ${p}`);
      },
    };
    const c = loadConfig(path.join(dir, f), {}, io);
    assert.ok(c.tenants.length >= 1, f);
  }
  // The examples show the new keys (commented where they are optional).
  const all = files.map((f) => readFileSync(path.join(dir, f), 'utf8')).join('\n');
  for (const key of ['sweep_interval', 'max_record_bytes', 'stall_after']) assert.ok(all.includes(key), `no example shows ${key}`);
});

describe('keys whose values reach logs, the wire or DNS take only their own shape (review finding 8)', () => {
  const secret = 'abc8Q~0123456789abcdefghijklmnopqrstuvwx';
  const random = 'Zq8x2Lm4Pw9Rt6Yu1Io3Ka7Sd5Fg0Hj2Kl4Mn6Bv';
  const cfg = (tree: Record<string, unknown>) => parseConfig({ tenants: [tenant()], ...tree }, '/x/c.yaml', {}, env());
  test('tenants[].name, status.tag, output.forward.host, state.path', () => {
    for (const bad of [secret, random]) {
      const msgs = problems({ tenants: [tenant({ name: bad })], status: { tag: bad }, output: { forward: { host: bad } } });
      has(msgs, 'tenants[0].name: must be a label');
      // A 40-character run of letters and digits is a valid DNS label and tag: only the shape can be checked.
      if (bad === secret) has(msgs, 'output.forward.host: must be a host name or an IP address', 'status.tag: must be a tag');
      assert.ok(!msgs.includes(bad.slice(0, 12)), 'never echoed');
    }
    for (const ok of ['contoso', 'Contoso-Prod', 'tenant_2', '11111111-2222-3333-4444-555555555555', 'ops@contoso']) assert.equal(cfg({ tenants: [tenant({ name: ok })] }).tenants[0]!.name, ok);
    assert.equal(cfg({ output: { forward: { host: 'fluent-bit.logging.svc' } } }).output.forward.host, 'fluent-bit.logging.svc');
    assert.equal(cfg({ output: { forward: { host: '::1' } } }).output.forward.host, '::1');
    has(problems({ tenants: [tenant()], state: { path: '/proc/self/x.json' } }), 'state.path: is on a virtual file system');
  });
});

test('tenants[].max_requests_per_minute: default 1,800, an integer from 10 to 100,000', () => {
  const c = parseConfig({ tenants: [tenant()] }, '/x/c.yaml', {}, env());
  assert.equal(c.tenants[0]!.maxRequestsPerMinute, 1800);
  assert.equal(c.polling.concurrency, 8);
  assert.equal(parseConfig({ tenants: [tenant({ max_requests_per_minute: 600 })] }, '/x/c.yaml', {}, env()).tenants[0]!.maxRequestsPerMinute, 600);
  has(problems({ tenants: [tenant({ max_requests_per_minute: 5 })] }), 'tenants[0].max_requests_per_minute: must be an integer from 10 to 100000');
});
