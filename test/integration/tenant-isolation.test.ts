/**
 * One tenant's failure never holds up the others (issue 8, "Many tenants, isolated"): a tenant
 * whose secret is refused is left out with its reason (summary, status records), while every
 * record of the healthy tenant is delivered, in a one-shot run and in a service.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { Collector } from '../../src/polling/collector.ts';
import { ForwardSink } from '../../src/sink/forward-sink.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { StateStore } from '../../src/state/state-store.ts';
import { silentLogger } from '../../src/support/logger.ts';
import { startForwardReceiver, type ForwardReceiver } from '../helpers/forward-receiver.ts';

let good: Simulator;
let refused: Simulator;
let rx: ForwardReceiver;
let dir: string;

before(async () => {
  [good, refused] = await Promise.all([startSimulator({ seed: 501, records: 300 }), startSimulator({ seed: 502, records: 300 })]);
  rx = await startForwardReceiver();
  dir = mkdtempSync(path.join(os.tmpdir(), 'm365-isolation-'));
  writeFileSync(path.join(dir, 'ca.pem'), `${good.caPem.trim()}\n${refused.caPem.trim()}\n`);
});
after(async () => {
  await rx.close();
  await Promise.all([good.close(), refused.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function twoTenants(name: string): Config {
  return configOf(name, [
    ['healthy', good, good.clientSecret],
    ['refused', refused, 'not-the-secret-0123456789abcdefghijklmnop'],
  ]);
}

function configOf(name: string, tenants: [string, Simulator, string][]): Config {
  const tenant = (n: string, sim: Simulator, secret: string) => ({ name: n, tenant_id: sim.tenantId, client_id: sim.clientId, client_secret: secret, api_url: sim.apiUrl, login_url: sim.loginUrl });
  const tree = {
    tenants: tenants.map(([n, sim, secret]) => tenant(n, sim, secret)),
    api: { ca_file: path.join(dir, 'ca.pem') },
    output: { type: 'forward', forward: { host: '127.0.0.1', port: rx.port, ack_timeout: '5s' } },
    state: { path: path.join(dir, `${name}.state.json`) },
    polling: { interval: '1s', initial_lookback: '21h', max_attempts: 2 },
    status: { interval: '1s' },
  };
  return parseConfig(tree, path.join(dir, `${name}.yaml`));
}

const auditIds = () => new Set(rx.entries.filter((e) => e.tag.startsWith('cloud.')).map((e) => e.record.Id as string));
const servedIds = (sim: Simulator) => new Set(sim.blobs().flatMap((b) => b.records.map((r) => r.Id as string)));

test('run once: the refused tenant is left out and named; every record of the healthy one arrives', async () => {
  rx.entries.length = 0;
  const config = twoTenants('once');
  const sink = new ForwardSink(config.output.forward, silentLogger);
  const collector = new Collector({ config, sink, store: new StateStore(config.state.path), log: silentLogger });
  try {
    const s = await collector.runOnce(AbortSignal.timeout(60_000));
    assert.deepEqual(auditIds(), servedIds(good));
    assert.equal(s.records, servedIds(good).size);
    assert.equal(s.tenantFailures.length, 1);
    assert.equal(s.tenantFailures[0]!.tenant, 'refused');
    assert.equal(s.tenantFailures[0]!.auth, true);
    assert.equal(collector.feeds.length, 5, 'only the healthy tenant\'s feeds are polled');
    const status = rx.entries.filter((e) => e.tag === 'm365forward.status').map((e) => e.record);
    const bad = status.filter((r) => r.tenant === 'refused');
    assert.equal(bad.length, 5, 'one status record per feed of the refused tenant');
    for (const r of bad) {
      assert.equal(r.stalled, true);
      assert.equal(r.tenantStarted, false);
      assert.match(String(r.lastError), /secret|credential|AADSTS|refused|invalid_client/i);
    }
    assert.ok(status.some((r) => r.tenant === 'healthy' && r.stalled === false));
    // Nothing of the refused tenant went into the state: it starts from its look-back once it can.
    assert.deepEqual([...new StateStore(config.state.path).load().keys()].filter((k) => k.startsWith('refused/')), []);
  } finally {
    await collector.close();
    await sink.close();
  }
});

test('a service polls the healthy tenant while the refused one waits for its retry', async () => {
  rx.entries.length = 0;
  const config = twoTenants('service');
  const sink = new ForwardSink(config.output.forward, silentLogger);
  const collector = new Collector({ config, sink, store: new StateStore(config.state.path), log: silentLogger });
  const ac = new AbortController();
  const running = collector.runForever(ac.signal).catch((e) => e);
  try {
    const want = servedIds(good).size;
    for (let i = 0; i < 600 && auditIds().size < want; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(auditIds(), servedIds(good));
    assert.deepEqual([...collector.failedTenants.keys()].map((t) => t.tenant.name), ['refused']);
  } finally {
    ac.abort();
    await running;
    await collector.close();
    await sink.close();
  }
});

test('when every tenant is refused, the run fails with the credential error (exit 3 in the CLI)', async () => {
  const config = twoTenants('all');
  config.tenants.splice(0, 1);
  const sink = new ForwardSink(config.output.forward, silentLogger);
  const collector = new Collector({ config, sink, store: new StateStore(config.state.path), log: silentLogger });
  try {
    await assert.rejects(collector.runOnce(AbortSignal.timeout(60_000)), (e: any) => e.code === 'AUTH_FAILED' && e.fatal === true);
  } finally {
    await collector.close();
    await sink.close();
  }
});

test('a tenant_id changed under the same name is refused with guidance, and the old checkpoint is not mixed in', async () => {
  rx.entries.length = 0;
  const first = configOf('renamed', [['healthy', good, good.clientSecret]]);
  let sink = new ForwardSink(first.output.forward, silentLogger);
  let collector = new Collector({ config: first, sink, store: new StateStore(first.state.path), log: silentLogger });
  try {
    await collector.runOnce(AbortSignal.timeout(60_000));
  } finally {
    await collector.close();
    await sink.close();
  }
  // The same name now points at another directory (tenant_id), with that directory's valid credentials.
  const second = configOf('renamed', [['healthy', refused, refused.clientSecret]]);
  sink = new ForwardSink(second.output.forward, silentLogger);
  collector = new Collector({ config: second, sink, store: new StateStore(second.state.path), log: silentLogger });
  try {
    await assert.rejects(collector.runOnce(AbortSignal.timeout(60_000)), (e: any) => e.code === 'CONFIG_INVALID' && /holds its checkpoint for tenant .*give the new tenant a new name/.test(e.message));
  } finally {
    await collector.close();
    await sink.close();
  }
  const feeds = new StateStore(first.state.path).load();
  assert.equal(feeds.get('healthy/Audit.Exchange')!.s.tenantId, good.tenantId, 'the old checkpoint is kept for its own tenant');
});
