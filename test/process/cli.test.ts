import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml, stringify } from 'yaml';
import { generateClientCertificate } from '../../src/simulator/index.ts';
import { StateStore } from '../../src/state/state-store.ts';
import { repoRoot, runCli, spawnCli, startSimulateProcess } from '../helpers/cli.ts';
import { startForwardReceiver, type ForwardReceiver } from '../helpers/forward-receiver.ts';

const STATUS = 'm365forward.status';
const audit = (rx: ForwardReceiver) => rx.entries.filter((e) => e.tag !== STATUS);
let dir: string;
before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'm365-proc-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of a written config, changed by `patch`, with a state file of its own. */
function variantConfig(from: string, name: string, patch: (cfg: any) => void): { file: string; cfg: any } {
  const cfg = parseYaml(readFileSync(from, 'utf8'));
  patch(cfg);
  cfg.state.path = path.join(dir, `${name}-state.json`);
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(cfg));
  return { file, cfg };
}

describe('simulate + run --once as separate processes', () => {
  let sim: Awaited<ReturnType<typeof startSimulateProcess>>;
  let rx: ForwardReceiver;
  let configFile: string;
  before(async () => {
    rx = await startForwardReceiver();
    configFile = path.join(dir, 'sim.yaml');
    sim = await startSimulateProcess(['--records', '3000', '--seed', '3', '--late', '0.2', '--page-size', '10', '--write-config', configFile]);
  });
  after(async () => {
    await sim?.stop();
    await rx?.close();
  });

  test('the ready line and the written config', () => {
    for (const k of ['apiUrl', 'loginUrl', 'tenantId', 'clientId', 'clientSecret', 'caFile']) assert.ok(sim.ready[k], `ready line has ${k}`);
    assert.match(sim.ready.apiUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(sim.ready.configFile, configFile);
    assert.ok(existsSync(sim.ready.caFile));
  });

  test('run --once collects every record once; a second run sends nothing', async () => {
    const first = await runCli(['run', '-c', configFile, '--once', '--forward-port', String(rx.port)]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /delivered 3000 records/);
    const ids = new Set(audit(rx).map((e) => e.record.Id));
    assert.equal(audit(rx).length, 3000);
    assert.equal(ids.size, 3000);
    const second = await runCli(['run', '-c', configFile, '--once', '--forward-port', String(rx.port), '--log-level', 'debug']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /delivered 0 records/);
    // --log-level debug says what happened: the tenant's start (skew, subscriptions) and each window listed.
    const debug = second.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((l) => l.level === 'debug');
    const started = debug.find((l) => l.msg === 'tenant started');
    assert.ok(started && started.tenant === 'simulator' && started.subscriptions['Audit.Exchange'] === 'enabled', JSON.stringify(started));
    assert.ok(debug.some((l) => l.msg === 'window done' && typeof l.from === 'string' && typeof l.blobs === 'number'), 'a line per window');
    assert.ok(!first.stderr.includes('"level":"debug"'), 'nothing at debug by default');
    assert.equal(audit(rx).length, 3000);
    assert.equal(rx.entries.filter((e) => e.tag === STATUS).length, 10, 'five status records per run');
  });

  test('state show and check', async () => {
    const show = await runCli(['state', 'show', '-c', configFile]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /simulator\/Audit.Exchange: cursor .*records delivered/);
    // A state file alone, without its config (a copy taken from a server), from another folder.
    const statePath = parseYaml(readFileSync(configFile, 'utf8')).state.path;
    const alone = await runCli(['state', 'show', '--state', statePath]);
    assert.equal(alone.code, 0, alone.stderr);
    assert.equal(alone.stdout.replace(/lag \d+ min/g, 'lag'), show.stdout.replace(/lag \d+ min/g, 'lag'), 'the same feeds, the same figures');
    const neither = await runCli(['state', 'show']);
    assert.equal(neither.code, 2);
    assert.match(neither.stderr, /-c FILE.*--state PATH/);
    const missing = await runCli(['state', 'show', '--state', path.join(dir, 'no-such-state.json')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no state file at .*no-such-state\.json/);
    const check = await runCli(['check', '-c', configFile, '--forward-port', String(rx.port)]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /^ok +config/m);
    assert.match(check.stdout, /ok +tenant simulator token: granted roles: ActivityFeed.Read/);
    assert.match(check.stdout, /ok +tenant simulator subscriptions: Audit.AzureActiveDirectory=enabled/);
    assert.match(check.stdout, /ok +tenant simulator clock skew/);
    assert.match(check.stdout, /ok +output: forward tcp:\/\/127.0.0.1:\d+: test record on tag m365forward.status acknowledged/);
    assert.ok(!check.stdout.includes(sim.ready.clientSecret), 'the secret is never printed');
  });

  test('subscriptions list, stop, start', async () => {
    const list = await runCli(['subscriptions', 'list', '-c', configFile]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /simulator\tDLP\.All\tenabled/);
    const stop = await runCli(['subscriptions', 'stop', '-c', configFile, '--content-type', 'DLP.All']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match((await runCli(['subscriptions', 'list', '-c', configFile])).stdout, /simulator\tDLP\.All\tdisabled/);
    const start = await runCli(['subscriptions', 'start', '-c', configFile]);
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stdout, /simulator\tDLP\.All\tstarted/);
    assert.match(start.stdout, /simulator\tAudit\.Exchange\talready enabled/);
    const bad = await runCli(['subscriptions', 'start', '-c', configFile, '--content-type', 'Audit.Nope']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Invalid values/);
  });

  test('a wrong secret: clear error, exit 3, nothing emitted, state untouched', async () => {
    const { file: bad, cfg } = variantConfig(configFile, 'wrong-secret', (c) => (c.tenants[0].client_secret = 'wrong-secret-value-123'));
    const before = rx.entries.length;
    const r = await runCli(['run', '-c', bad, '--once', '--forward-port', String(rx.port)]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /cannot get a token for tenant simulator.*invalid_client.*AADSTS7000215/s);
    assert.ok(!r.stderr.includes('wrong-secret-value-123'), 'the secret is not echoed');
    assert.equal(rx.entries.length, before, 'nothing emitted');
    assert.ok(!existsSync(cfg.state.path), 'state untouched');
  });

  test('an interrupted run --once exits 130', async () => {
    const never = await startForwardReceiver({ ack: 'never' });
    try {
      const child = spawnCli(['run', '-c', configFile, '--once', '--forward-port', String(never.port), '--state', path.join(dir, 'interrupted.json')]);
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const closed = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
      for (let i = 0; i < 200 && never.frames === 0; i++) await new Promise((r) => setTimeout(r, 50));
      child.kill('SIGINT');
      assert.equal(await closed, 130, stderr);
      assert.match(stderr, /interrupted by SIGINT; \d+ records in \d+ blobs acknowledged by forward tcp:\/\/127.0.0.1:\d+ and checkpointed; the rest is sent next time/);
    } finally {
      await never.close();
    }
  });

  test('an invalid config: every problem with its key path, exit 2', async () => {
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, 'tenants:\n  - tenant_id: nope\n    client_id: 1\noutput:\n  type: kafka\n');
    const r = await runCli(['run', '-c', bad, '--once']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /tenants\[0\]\.tenant_id: must be a GUID/);
    assert.match(r.stderr, /tenants\[0\]\.client_id: must be a non-empty string/);
    assert.match(r.stderr, /output\.type: must be "forward" or "stdout"/);
  });
});

describe('certificate credential', () => {
  test('works end to end; an unregistered certificate is refused with exit 3', async () => {
    const rx = await startForwardReceiver();
    const configFile = path.join(dir, 'cert.yaml');
    const sim = await startSimulateProcess(['--records', '200', '--credential', 'certificate', '--write-config', configFile]);
    try {
      const ok = await runCli(['run', '-c', configFile, '--once', '--forward-port', String(rx.port)]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(audit(rx).length, 200);

      // A key pair the app does not know: the simulator checks the assertion against registered certificates.
      const other = await generateClientCertificate();
      writeFileSync(path.join(dir, 'other.key'), other.keyPem, { mode: 0o600 });
      writeFileSync(path.join(dir, 'other.crt'), other.certPem);
      const { file: bad, cfg } = variantConfig(configFile, 'other', (c) => {
        c.tenants[0].certificate = { private_key_file: path.join(dir, 'other.key'), certificate_file: path.join(dir, 'other.crt') };
      });
      const before = rx.entries.length;
      const r = await runCli(['run', '-c', bad, '--once', '--forward-port', String(rx.port)]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /AADSTS700027/);
      assert.ok(!r.stderr.includes('PRIVATE KEY'));
      assert.equal(rx.entries.length, before);
      assert.ok(!existsSync(cfg.state.path));
    } finally {
      await sim.stop();
      await rx.close();
    }
  });
});

describe('--corpus', () => {
  async function corpusRoundTrip(file: string, expected: Record<string, unknown>[]) {
    const rx = await startForwardReceiver();
    const configFile = path.join(dir, `corpus-${path.basename(file)}.yaml`);
    const sim = await startSimulateProcess(['--corpus', file, '--late', '0.3', '--write-config', configFile]);
    try {
      const r = await runCli(['run', '-c', configFile, '--once', '--forward-port', String(rx.port)]);
      assert.equal(r.code, 0, r.stderr);
      const got = audit(rx).map((e) => JSON.stringify(e.record)).sort();
      const want = expected.map((e) => JSON.stringify(e)).sort();
      assert.deepEqual(got, want, 'exactly the corpus records, each once, unchanged');
      for (const e of audit(rx)) assert.match(e.tag, /^cloud\.office365\.management\.[a-z0-9]+$/);
    } finally {
      await sim.stop();
      await rx.close();
    }
  }

  test('a corpus file of records is served and collected exactly', async () => {
    const recs = Array.from({ length: 500 }, (_, i) => ({
      Id: `c-${i}`,
      CreationTime: new Date(Date.now() - (i + 1) * 60_000).toISOString().slice(0, 19),
      Workload: ['Exchange', 'SharePoint', 'OneDrive', 'AzureActiveDirectory', 'MicrosoftTeams', 'PowerBI'][i % 6],
      RecordType: 1 + (i % 20),
      Operation: i % 50 === 0 ? 'DlpRuleMatch' : 'Op',
      Nested: { list: [i, null, {}, []], text: 'tab\there "quoted" ü 🚀' },
      Big: 2 ** 53 - 1 - i,
    }));
    const file = path.join(dir, 'corpus.ndjson');
    writeFileSync(file, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
    await corpusRoundTrip(file, recs);
  });

  const fixtures = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'audit-records.ndjson');
  test('the shared real-format fixture records', { skip: existsSync(fixtures) ? false : `no ${fixtures} (a user's clone has no ../shared)` }, async () => {
    const recs = readFileSync(fixtures, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
    await corpusRoundTrip(fixtures, recs);
  });

  test('a corpus with a broken line is refused, naming the line', async () => {
    const file = path.join(dir, 'broken.ndjson');
    writeFileSync(file, '{"Id":"a"}\n{"Id":\n');
    const r = await runCli(['simulate', '--corpus', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /broken\.ndjson:2/);
  });
});

describe('kill -9 while acks are withheld', () => {
  test('the checkpoint does not move; the next run delivers everything', async () => {
    const rx = await startForwardReceiver({ ack: 'never' });
    const configFile = path.join(dir, 'kill.yaml');
    const sim = await startSimulateProcess(['--records', '1000', '--seed', '11', '--write-config', configFile]);
    try {
      const cfg = parseYaml(readFileSync(configFile, 'utf8'));
      const stateFile = cfg.state.path as string;
      const child = spawnCli(['run', '-c', configFile, '--forward-port', String(rx.port)]);
      // Wait until frames reached the receiver (and were not acked).
      for (let i = 0; i < 200 && rx.frames === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(rx.frames > 0, 'frames were sent');
      await new Promise((r) => setTimeout(r, 500));
      child.kill('SIGKILL');
      await new Promise((r) => child.on('close', r));
      for (const [k, f] of new StateStore(stateFile).load()) {
        assert.equal(f.s.recordsDelivered, 0, `${k} checkpointed records that were never acked`);
        assert.equal(f.done.size, 0, `${k} marked blobs done without acks`);
      }
      rx.setAck('always');
      rx.entries.length = 0;
      const r = await runCli(['run', '-c', configFile, '--once', '--forward-port', String(rx.port)]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(new Set(audit(rx).map((e) => e.record.Id)).size, 1000, 'every record delivered after the restart');
    } finally {
      await sim.stop();
      await rx.close();
    }
  });
});

describe('run for ever', () => {
  test('polls, sends status records at their interval, and stops cleanly on SIGTERM', async () => {
    const rx = await startForwardReceiver();
    const configFile = path.join(dir, 'forever.yaml');
    const sim = await startSimulateProcess(['--records', '500', '--seed', '21', '--write-config', configFile]);
    try {
      const cfg = parseYaml(readFileSync(configFile, 'utf8'));
      cfg.polling.interval = '1s';
      cfg.status = { tag: 'custom.status', interval: '1s' };
      writeFileSync(configFile, stringify(cfg));
      const child = spawnCli(['run', '-c', configFile, '--forward-port', String(rx.port)]);
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const closed = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
      const statusCount = () => rx.entries.filter((e) => e.tag === 'custom.status').length;
      for (let i = 0; i < 300 && (rx.entries.filter((e) => e.tag.startsWith('cloud.')).length < 500 || statusCount() < 10); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(rx.entries.filter((e) => e.tag.startsWith('cloud.')).length, 500, 'all records delivered');
      assert.ok(statusCount() >= 10, `status records every second (${statusCount()})`);
      const s = rx.entries.filter((e) => e.tag === 'custom.status').at(-1)!.record;
      assert.equal(s.type, 'm365-forward.status');
      assert.ok(!JSON.stringify(rx.entries.filter((e) => e.tag === 'custom.status')).includes(sim.ready.clientSecret));
      // A second collector on the same state file is refused while this one runs.
      const second = await runCli(['run', '-c', configFile, '--once', '--forward-port', String(rx.port)]);
      assert.equal(second.code, 1, second.stderr);
      assert.match(second.stderr, /state file .* is in use by another m365-forward \(pid \d+\)/);
      child.kill('SIGTERM');
      assert.equal(await closed, 0, stderr);
      assert.ok(!existsSync(`${cfg.state.path}.lock`), 'the lock is released on exit');
      assert.match(stderr, /"msg":"stopping"/);
      assert.ok(!stderr.includes(sim.ready.clientSecret), 'the secret never appears in logs');
      const state = new StateStore(cfg.state.path).load();
      assert.equal([...state.values()].reduce((n, f) => n + f.s.recordsDelivered, 0), 500);
    } finally {
      await sim.stop();
      await rx.close();
    }
  });
});

describe('demo', () => {
  test('prints routed records from several workloads and a summary, exit 0', async () => {
    const r = await runCli(['demo', '--records', '80']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('{'));
    const recs = lines.map((l) => JSON.parse(l));
    const audit = recs.filter((x) => x.tag.startsWith('cloud.office365.management.'));
    assert.equal(audit.length, 80);
    assert.ok(new Set(audit.map((x) => x.tag)).size >= 4, 'several workloads');
    for (const x of audit) assert.ok(x.time && x.record.Id);
    assert.match(r.stderr, /demo summary: 80 records in \d+ blobs from 5 feeds/);
    assert.doesNotMatch(r.stdout, /demo summary/, 'stdout holds only records (npm run demo | jq works)');
  });

  test('--output forward sends them to a forward input and waits for the acks', async () => {
    const rx = await startForwardReceiver();
    try {
      const r = await runCli(['demo', '--records', '50', '--output', 'forward', '--forward-port', String(rx.port), '--record-format', 'devo']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /every one acknowledged and checkpointed/);
      const got = audit(rx);
      assert.equal(got.length, 50);
      for (const e of got) assert.equal(e.record.devo_tag, e.tag);
    } finally {
      await rx.close();
    }
  });
});
