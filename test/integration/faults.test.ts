import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { generateClientCertificate, startSimulator } from '../../src/simulator/index.ts';
import { StateStore } from '../../src/state/state-store.ts';
import { CollectorError } from '../../src/errors.ts';
import { Collector } from '../../src/polling/collector.ts';
import { ForwardSink } from '../../src/sink/forward-sink.ts';
import { silentLogger } from '../../src/support/logger.ts';
import { runOnce, simConfig } from '../helpers/collector-harness.ts';
import { startForwardReceiver, type ForwardReceiver } from '../helpers/forward-receiver.ts';

const STATUS = 'm365forward.status';
let rx: ForwardReceiver;
before(async () => {
  rx = await startForwardReceiver();
});
after(async () => {
  await rx?.close();
});

test('throttling, 5xx, resets, truncated bodies and a revoked token are retried: every record exactly once', async () => {
  const sim = await startSimulator({ seed: 5, records: 1500, spanHours: 10, pageSize: 8 });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 12, patch: (t) => (t.polling.request_timeout = '5s') });
  try {
    const faults = [
      { route: 'content', kind: '429', count: 2, retryAfterSeconds: 1 },
      { route: 'blob', kind: '403-AF429', count: 2 },
      { route: 'blob', kind: '500', count: 2 },
      { route: 'blob', kind: 'reset', count: 2 },
      { route: 'blob', kind: 'truncate', count: 2 },
      { route: 'content', kind: '503', count: 1 },
      { route: 'any', kind: 'expire-token', count: 1 },
    ] as const;
    for (const f of faults) sim.injectFault({ ...f });
    const s = await runOnce(config);
    assert.deepEqual(s.errors, []);
    assert.equal(s.parked, 0);
    assert.equal(sim.stats().faultsServed, faults.reduce((n, f) => n + f.count, 0), 'every fault was hit');
    const got = rx.entries.filter((e) => e.tag !== STATUS);
    const served = sim.blobs().flatMap((b) => b.records);
    assert.equal(got.length, served.length);
    assert.equal(new Set(got.map((e) => e.record.Id)).size, served.length);
    const status = rx.entries.filter((e) => e.tag === STATUS);
    assert.ok(status.some((e) => (e.record.throttled as number) > 0), 'throttling shows in the status records');
  } finally {
    cleanup();
    await sim.close();
  }
});

test('a blob that keeps failing is parked, retried on a later run, and reported lost once expired', async () => {
  let offset = 0;
  const clock = () => Date.now() + offset;
  const sim = await startSimulator({ seed: 9, records: 0, spanHours: 2, now: clock });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 3, patch: (t) => (t.polling.max_attempts = 2) });
  try {
    sim.addRecords([{ Id: 'only', CreationTime: new Date(clock() - 600_000).toISOString().slice(0, 19), Workload: 'Exchange', Operation: 'Send' }], {
      contentType: 'Audit.Exchange',
      contentCreated: clock() - 300_000,
    });
    sim.injectFault({ route: 'blob', kind: '500', count: 2 });
    const first = await runOnce(config, clock);
    assert.equal(first.parked, 1, 'parked after max_attempts');
    assert.equal(rx.entries.filter((e) => e.tag !== STATUS).length, 0);
    let state = new StateStore(config.state.path).load();
    const feed = state.get('simulator/Audit.Exchange')!;
    assert.equal(feed.retry.size, 1);
    assert.match([...feed.retry.values()][0]!.lastError, /HTTP 500/);

    // Not due yet: nothing happens. Due (an hour later): delivered from the retry queue.
    const notDue = await runOnce(config, clock);
    assert.equal(notDue.records, 0);
    offset = 3_600_000;
    const second = await runOnce(config, clock);
    assert.equal(second.records, 1);
    assert.equal(rx.entries.filter((e) => e.tag !== STATUS).length, 1);
    state = new StateStore(config.state.path).load();
    assert.equal(state.get('simulator/Audit.Exchange')!.retry.size, 0);

    // A second failing blob that expires while parked: counted as lost, in the state and the status record.
    sim.addRecords([{ Id: 'doomed', CreationTime: new Date(clock() - 600_000).toISOString().slice(0, 19), Workload: 'Exchange', Operation: 'Send' }], {
      contentType: 'Audit.Exchange',
      contentCreated: clock() - 300_000,
    });
    sim.injectFault({ route: 'blob', kind: '500', count: 2 });
    const third = await runOnce(config, clock);
    assert.equal(third.parked, 1);
    offset += 8 * 24 * 3_600_000;
    const fourth = await runOnce(config, clock);
    assert.equal(fourth.lost, 1);
    state = new StateStore(config.state.path).load();
    assert.equal(state.get('simulator/Audit.Exchange')!.s.lost, 1);
    assert.match(state.get('simulator/Audit.Exchange')!.s.lastError!, /expired/);
    const lastStatus = rx.entries.filter((e) => e.tag === STATUS && e.record.contentType === 'Audit.Exchange').at(-1)!;
    assert.equal(lastStatus.record.lost, 1);
  } finally {
    cleanup();
    await sim.close();
  }
});

test('certificate credential: a token the API suddenly rejects is refreshed and the run completes', async () => {
  const cert = await generateClientCertificate();
  const sim = await startSimulator({ seed: 13, records: 300, spanHours: 5, clientCertificates: [cert.certPem] });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, {
    port: rx.port,
    spanHours: 6,
    patch: (t) => {
      const dir = path.dirname(t.api.ca_file);
      writeFileSync(path.join(dir, 'client.key'), cert.keyPem, { mode: 0o600 });
      writeFileSync(path.join(dir, 'client.crt'), cert.certPem);
      delete t.tenants[0].client_secret;
      t.tenants[0].certificate = { private_key_file: path.join(dir, 'client.key'), certificate_file: path.join(dir, 'client.crt') };
    },
  });
  try {
    sim.injectFault({ route: 'content', kind: 'expire-token', count: 1 });
    const s = await runOnce(config);
    assert.deepEqual(s.errors, []);
    assert.equal(rx.entries.filter((e) => e.tag !== STATUS).length, 300);
    assert.ok(sim.stats().tokensIssued >= 2, 'a second token was fetched after the 401');
  } finally {
    cleanup();
    await sim.close();
  }
});

test('a state that cannot be written stops the run, which reports what was acked and that it will be re-sent (the disk-full summary)', async () => {
  const sim = await startSimulator({ seed: 23, records: 2000, spanHours: 5 });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 6 });
  // Compact after every batch, and break the disk right after the start-up snapshot: the atomic
  // write's temp file becomes a folder, so the next snapshot fails (EISDIR) mid-run.
  const store = new StateStore(config.state.path, { compactMinBytes: 1 });
  const compact = store.compact.bind(store);
  store.compact = async () => {
    await compact();
    mkdirSync(`${config.state.path}.${process.pid}.tmp`, { recursive: true });
  };
  const sink = new ForwardSink(config.output.forward, silentLogger);
  const collector = new Collector({ config, sink, store, log: silentLogger });
  try {
    // The failure stops the run (it rejects), or, when the run had finished before the first
    // batch was written, the final flush fails and the summary says so: never "saved".
    let stateError: string | undefined;
    try {
      stateError = (await collector.runOnce(AbortSignal.timeout(60_000))).stateError;
    } catch (e) {
      assert.ok(e instanceof CollectorError && e.code === 'STATE_IO', String(e));
      stateError = e.message;
    }
    assert.match(stateError ?? '', /cannot write state file .*EISDIR/);
    const acked = collector.progress();
    assert.ok(acked.records > 0, 'records were acked before the failure');
    assert.equal(rx.entries.filter((e) => e.tag !== STATUS).length >= acked.records, true);
    // Nothing the disk did not keep is reported as saved: a new run starts from what is on disk.
    await collector.close().catch(() => {});
    const onDisk = new StateStore(config.state.path).load();
    assert.ok([...onDisk.values()].reduce((n, f) => n + f.s.recordsDelivered, 0) < acked.records);
  } finally {
    await sink.close();
    cleanup();
    await sim.close();
  }
});

test('a local clock an hour behind the API: windows are planned in API time, nothing is refused or missed', async () => {
  const apiAhead = 3_600_000;
  const sim = await startSimulator({ seed: 29, records: 400, spanHours: 30, now: () => Date.now() + apiAhead });
  rx.entries.length = 0;
  // Look back (almost) the full 7 days: by the local clock the oldest window would be more than
  // 7 days back for the API (AF20055) without the correction.
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 30, patch: (t) => (t.polling.initial_lookback = '167h') });
  try {
    const s = await runOnce(config);
    assert.deepEqual(s.errors, []);
    const served = sim.blobs().flatMap((b) => b.records);
    assert.equal(rx.entries.filter((e) => e.tag !== STATUS).length, served.length);
    const status = rx.entries.filter((e) => e.tag === STATUS).at(-1)!;
    // The Date header has one-second resolution.
    assert.ok(Math.abs((status.record.clockSkewSeconds as number) + 3600) <= 2, `skew ${status.record.clockSkewSeconds}`);
  } finally {
    cleanup();
    await sim.close();
  }
});
