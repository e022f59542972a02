/**
 * Many tenants, isolated (issue 8), as a user runs it: one `simulate --tenants 50` process serves
 * 50 tenants of 200 records each; `run -c FILE --once` collects them into a Forward receiver while
 * one tenant's secret is wrong (its config entry edited) and another is throttled by the API for
 * the whole run (403 AF429 on every API call it makes, reference management-api.md §5). Every
 * record of the 48 healthy tenants arrives exactly once, the two others are named in the run's
 * summary and in their status records, and the exit code is 3 (credentials refused).
 *
 * A tenant throttled once started (content listing only) fails its feeds while the others are
 * delivered: exit 1, the summary naming the tenant's feeds. A tenant throttled from its first call
 * holds up no other: the healthy tenants' records arrive while it is still being retried.
 * Run: node --import tsx --test test/process/many-tenants.test.ts
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml, stringify } from 'yaml';
import { runCli, spawnCli, startSimulateProcess } from '../helpers/cli.ts';
import { startForwardReceiver, type ForwardReceiver } from '../helpers/forward-receiver.ts';

const TENANTS = 50;
const RECORDS = 200;
/** 1-based indexes into the simulator's tenants (and the config's `tenants:` list). */
const THROTTLED = 7;
const REFUSED = 31;
const STATUS = 'm365forward.status';
const MANAGE = 'https://manage.office.com';
const CONTENT_TYPES = ['Audit.AzureActiveDirectory', 'Audit.Exchange', 'Audit.SharePoint', 'Audit.General', 'DLP.All'];
/** Every API call of a tenant answers 403 AF429: the subscriptions list, their start, the content listing, the blobs (its token is granted). */
const throttleAll = (index: number) => ['list', 'start', 'content', 'blob'].flatMap((route) => ['--fault', `403-AF429@${route}:1000000@${index}`]);
/** Records spread over the past 2 hours: the written config looks back 3 (span + 1), a few listing calls a feed. */
const SPAN = ['--span', '2'];

/**
 * `simulate` with `args`, its config written to `dir`, then changed by `patch` and pointed at
 * the receiver: the config file a run uses.
 */
async function simulateWithConfig(dir: string, rx: ForwardReceiver, args: string[], patch: (cfg: any) => void) {
  const written = path.join(dir, 'sim.yaml');
  const sim = await startSimulateProcess([...args, '--write-config', written]);
  const cfg = parseYaml(readFileSync(written, 'utf8'));
  patch(cfg);
  cfg.output.forward.port = rx.port;
  const configFile = path.join(dir, 'run.yaml');
  writeFileSync(configFile, stringify(cfg), { mode: 0o600 });
  return { sim, cfg, configFile };
}

const auditRecords = (rx: ForwardReceiver) => rx.entries.filter((e) => e.tag !== STATUS);

/** One HTTPS request trusting the simulator's CA: status and parsed JSON body. */
function request(ca: string, method: string, url: string, opts: { token?: string; form?: Record<string, string> } = {}): Promise<{ status: number; json: any }> {
  const body = opts.form ? new URLSearchParams(opts.form).toString() : undefined;
  const headers: Record<string, string> = {};
  if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
  if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

interface TenantEntry {
  name: string;
  tenant_id: string;
  client_id: string;
  client_secret: string;
}

/**
 * Every record Id a tenant serves, read through the simulator's own API as a client would: a
 * token, the five subscriptions started, every listing page, every blob. Run after the
 * collector, so the subscriptions it started are there already (a start answers AF20024 then).
 */
async function servedIds(ca: string, apiUrl: string, t: TenantEntry): Promise<string[]> {
  const tok = await request(ca, 'POST', `${apiUrl}/${t.tenant_id}/oauth2/v2.0/token`, {
    form: { grant_type: 'client_credentials', client_id: t.client_id, client_secret: t.client_secret, scope: `${MANAGE}/.default` },
  });
  assert.equal(tok.status, 200, `token of ${t.name}: ${JSON.stringify(tok.json)}`);
  const token = tok.json.access_token as string;
  const root = `${apiUrl}/api/v1.0/${t.tenant_id}/activity/feed`;
  const end = Date.now() + 60_000;
  const ids: string[] = [];
  for (const ct of CONTENT_TYPES) {
    await request(ca, 'POST', `${root}/subscriptions/start?contentType=${ct}`, { token });
    // The simulator spreads content over the past --span hours: one window of 24 h covers it.
    const start = new Date(end - 24 * 3_600_000).toISOString().slice(0, 19);
    const stop = new Date(end).toISOString().slice(0, 19);
    let url: string | undefined = `${root}/subscriptions/content?contentType=${ct}&startTime=${start}&endTime=${stop}`;
    while (url) {
      const page = await listPage(ca, url, token);
      for (const blob of page.items) {
        const b = await request(ca, 'GET', blob.contentUri, { token });
        assert.equal(b.status, 200);
        for (const r of b.json as { Id: string }[]) ids.push(r.Id);
      }
      url = page.next;
    }
  }
  return ids;
}

/** One listing page and its NextPageUri (node:https keeps header names lower-case). */
function listPage(ca: string, url: string, token: string): Promise<{ items: { contentUri: string }[]; next: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { ca, headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`listing ${url}: HTTP ${res.statusCode} ${Buffer.concat(chunks).toString()}`));
        resolve({ items: JSON.parse(Buffer.concat(chunks).toString('utf8')), next: res.headers['nextpageuri'] as string | undefined });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe(`${TENANTS} tenants from one simulator: one refused, one throttled, the others delivered`, () => {
  let dir: string;
  let rx: ForwardReceiver;
  let sim: Awaited<ReturnType<typeof startSimulateProcess>>;
  let cfg: any;
  let configFile: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'm365-many-'));
    rx = await startForwardReceiver();
    ({ sim, cfg, configFile } = await simulateWithConfig(dir, rx, ['--tenants', String(TENANTS), '--records', String(RECORDS), '--seed', '8', ...SPAN, ...throttleAll(THROTTLED)], (c) => {
      c.tenants[REFUSED - 1].client_secret = 'not-the-secret-of-this-app-0123456789';
      // Past polling.max_attempts a throttled call gives up: 2 keeps the run short (the
      // default, 5, backs off for minutes, BACKOFF.apiThrottled).
      c.polling.max_attempts = 2;
    }));
  });

  after(async () => {
    await sim?.stop();
    await rx?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the ready line and the written config name every tenant; the secrets are only in the file', () => {
    const { ready } = sim;
    assert.equal(ready.tenants.length, TENANTS);
    assert.equal(ready.records, TENANTS * RECORDS);
    assert.deepEqual(ready.faults, ['list', 'start', 'content', 'blob'].map((r) => `403-AF429@${r}:1000000@${THROTTLED}`));
    assert.deepEqual(
      ready.tenants.map((t: any) => t.name),
      Array.from({ length: TENANTS }, (_, i) => `sim-${String(i + 1).padStart(2, '0')}`),
    );
    assert.equal(new Set(ready.tenants.map((t: any) => t.tenantId)).size, TENANTS, 'every tenant has its own id');
    assert.equal(new Set(ready.tenants.map((t: any) => t.clientId)).size, TENANTS, 'and its own app');
    for (const t of ready.tenants) assert.equal(t.records, RECORDS);
    assert.equal(cfg.tenants.length, TENANTS);
    assert.deepEqual(cfg.tenants.map((t: TenantEntry) => t.tenant_id), ready.tenants.map((t: any) => t.tenantId));
    assert.equal(new Set(cfg.tenants.map((t: TenantEntry) => t.client_secret)).size, TENANTS, 'and its own secret');
    const line = JSON.stringify(ready);
    for (const t of cfg.tenants.slice(1)) assert.ok(!line.includes(t.client_secret), `${t.name}'s secret is not printed`);
  });

  test('run --once delivers every record of the 48 healthy tenants once, names the two others, exits 3', { timeout: 120_000 }, async () => {
    const r = await runCli(['run', '-c', configFile, '--once'], { timeoutMs: 110_000 });
    const refused = cfg.tenants[REFUSED - 1] as TenantEntry;
    const throttled = cfg.tenants[THROTTLED - 1] as TenantEntry;
    assert.equal(r.code, 3, `exit 3 when a tenant's credentials were refused:\n${r.stderr}`);

    // Every record of every healthy tenant, once: compared by Id with what each one serves.
    const ca = readFileSync(sim.ready.caFile, 'utf8');
    const healthy = (cfg.tenants as TenantEntry[]).filter((t) => t !== refused && t !== throttled);
    assert.equal(healthy.length, TENANTS - 2);
    const want: string[] = [];
    for (const t of healthy) want.push(...(await servedIds(ca, sim.ready.apiUrl, t)));
    assert.equal(want.length, healthy.length * RECORDS, 'the simulator serves RECORDS records a tenant');
    assert.equal(new Set(want).size, want.length, 'record Ids are unique across tenants');
    const got = auditRecords(rx).map((e) => String(e.record.Id));
    assert.equal(got.length, new Set(got).size, 'no record arrived twice');
    assert.deepEqual(got.sort(), want.sort(), 'exactly the healthy tenants\' records');
    assert.match(r.stderr, new RegExp(`delivered ${want.length} records`));

    // The two others are named in the summary, each with why.
    const summary = r.stderr.slice(r.stderr.indexOf('m365-forward: delivered'));
    assert.match(summary, new RegExp(`tenant ${refused.name} was left out: credentials refused: .*AADSTS7000215`));
    assert.match(summary, new RegExp(`tenant ${throttled.name} was left out: .*AF429`));
    assert.ok(!r.stderr.includes(refused.client_secret), 'the wrong secret is not echoed');
    for (const t of healthy) assert.doesNotMatch(summary, new RegExp(`\\b${t.name}\\b`));

    // ... and in their status records: one per feed, with the last error.
    const status = rx.entries.filter((e) => e.tag === STATUS).map((e) => e.record);
    for (const [t, why] of [[refused, /AADSTS7000215/], [throttled, /AF429/]] as const) {
      const own = status.filter((s) => s.tenant === t.name);
      assert.equal(own.length, CONTENT_TYPES.length, `a status record per feed of ${t.name}`);
      for (const s of own) assert.match(String(s.lastError), why, `${t.name}/${s.contentType} carries lastError`);
    }
    assert.equal(new Set(status.map((s) => s.tenant)).size, TENANTS, 'every tenant reports its feeds');
  });
});

describe('a tenant throttled once started: its feeds fail, the others are delivered, exit 1', () => {
  let dir: string;
  let rx: ForwardReceiver;
  let sim: Awaited<ReturnType<typeof startSimulateProcess>>;
  let cfg: any;
  let run: { code: number | null; stdout: string; stderr: string };
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'm365-many-feeds-'));
    rx = await startForwardReceiver();
    let configFile: string;
    // Tenant 2 starts (its token and subscriptions are fine); every content listing of it is refused.
    ({ sim, cfg, configFile } = await simulateWithConfig(dir, rx, ['--tenants', '3', '--records', '30', '--seed', '10', ...SPAN, '--fault', '403-AF429@content:1000000@2'], (c) => {
      c.polling.max_attempts = 2;
    }));
    run = await runCli(['run', '-c', configFile, '--once'], { timeoutMs: 80_000 });
  });
  after(async () => {
    await sim?.stop();
    await rx?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('every record of the two others arrives; the throttled feeds carry lastError; exit 1', () => {
    assert.equal(run.code, 1, run.stderr);
    assert.equal(auditRecords(rx).length, 60, 'the two healthy tenants\' records');
    assert.equal(new Set(auditRecords(rx).map((e) => e.record.Id)).size, 60);
    const throttled = rx.entries.filter((e) => e.tag === STATUS && e.record.tenant === cfg.tenants[1].name).map((e) => e.record);
    assert.equal(throttled.length, CONTENT_TYPES.length);
    for (const s of throttled) assert.match(String(s.lastError), /AF429/);
  });

  test(
    'the summary names the throttled tenant',
    () => {
      const summary = run.stderr.slice(run.stderr.indexOf('m365-forward: delivered'));
      assert.match(summary, new RegExp(`${cfg.tenants[1].name}\\b.*AF429`), summary);
    },
  );
});

describe('a tenant throttled from its first call', () => {
  let dir: string;
  let rx: ForwardReceiver;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'm365-many-held-'));
    rx = await startForwardReceiver();
  });
  after(async () => {
    await rx?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test(
    'holds up no other tenant',
    {
      timeout: 60_000,
    },
    async () => {
      const { sim, configFile } = await simulateWithConfig(dir, rx, ['--tenants', '4', '--records', '30', '--seed', '9', ...SPAN, ...throttleAll(2)], (c) => {
        // Tenant 2 goes on retrying far longer than the wait below: the others must not wait for it.
        c.polling.max_attempts = 100;
      });
      const child = spawnCli(['run', '-c', configFile, '--once']);
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const closed = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      try {
        // The three healthy tenants' 90 records take seconds; tenant 2's retries last many minutes.
        for (let i = 0; i < 400 && auditRecords(rx).length < 90; i++) await new Promise((r) => setTimeout(r, 50));
        assert.equal(auditRecords(rx).length, 90, `the healthy tenants' records, while tenant 2 is still being retried:\n${stderr}`);
      } finally {
        child.kill('SIGINT');
        await closed;
        await sim.stop();
      }
    },
  );
});
