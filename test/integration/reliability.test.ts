/**
 * Nothing lost, nothing stuck, nothing leaked: one regression test per hole found in the review
 * of issue 6 (the finding's number is in each test name), collector and simulator in this process
 * on a shared clock, a Forward receiver on loopback.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ApiClient } from '../../src/management-api/api-client.ts';
import { listContent } from '../../src/management-api/list-content.ts';
import { parseApiTime } from '../../src/management-api/dates.ts';
import { generateClientCertificate, parseCorpus, startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { generateServerTls } from '../../src/simulator/tls.ts';
import { deadLetterPath, DeadLetterFile } from '../../src/state/dead-letter.ts';
import { StateStore } from '../../src/state/state-store.ts';
import { Collector } from '../../src/polling/collector.ts';
import { ForwardSink } from '../../src/sink/forward-sink.ts';
import { silentLogger } from '../../src/support/logger.ts';
import { runOnce, simConfig } from '../helpers/collector-harness.ts';
import { startForwardReceiver, type ForwardReceiver } from '../helpers/forward-receiver.ts';
import { mpDecode, reference, sameValue } from '../helpers/msgpack-typed.ts';

const H = 3600_000;
const D = 24 * H;
const STATUS = 'm365forward.status';
let rx: ForwardReceiver;
before(async () => {
  rx = await startForwardReceiver({ bufferMaxSize: 16 * 1024 * 1024 });
});
after(async () => {
  await rx?.close();
});

const audit = () => rx.entries.filter((e) => e.tag !== STATUS);
const ids = () => audit().map((e) => e.record.Id as string);
const served = (sim: Simulator) => sim.blobs().reduce((n, b) => n + b.recordCount, 0);
const lastStatus = (ct: string) => rx.entries.filter((e) => e.tag === STATUS && e.record.contentType === ct).at(-1)!.record;

/** A clock the test moves; the simulator and the collector share it (plus the collector's own offset). */
function clock(start = Date.now()) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

test('1. late content: blobs listed 30 h and 6 days after their creation are all delivered once by the sweep', async () => {
  const c = clock();
  const sim = await startSimulator({ seed: 41, records: 1500, spanHours: 10, now: c.now, lateRelease: { fraction: 0.1, byMs: [30 * H, 6 * D], releaseAfterMs: 20_000 } });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 11, patch: (t) => (t.polling.sweep_interval = '1m') });
  try {
    const late = sim.blobs().filter((b) => b.availableAt > c.now());
    assert.ok(late.length >= 5, `some blobs are released late (${late.length})`);
    const first = await runOnce(config, c.now);
    assert.deepEqual(first.errors, []);
    assert.equal(audit().length, served(sim) - late.reduce((n, b) => n + b.recordCount, 0), 'everything listed by then');
    c.advance(90_000); // the late blobs are released, and a sweep is due
    const second = await runOnce(config, c.now);
    assert.deepEqual(second.errors, []);
    assert.equal(second.late, late.length, 'every late blob found and counted');
    assert.equal(new Set(ids()).size, served(sim));
    assert.equal(audit().length, served(sim), 'nothing twice');
    const st = lastStatus('Audit.Exchange');
    assert.ok((st.lateBlobs as number) >= 0 && typeof st.maxLatenessSeconds === 'number');
    const feeds = [...new StateStore(config.state.path).load().values()];
    assert.equal(feeds.reduce((n, f) => n + f.s.lateBlobs, 0), late.length);
    assert.ok(Math.max(...feeds.map((f) => f.s.maxLatenessSeconds)) >= 6 * 24 * 3600 - 120, 'the 6-day lateness is reported');
    // Changing the overlap never re-sends what was delivered.
    const wider = simConfig(sim, { port: rx.port, spanHours: 11, dir: path.dirname(config.state.path), patch: (t) => ((t.polling.overlap = '24h'), (t.polling.sweep_interval = '1m')) });
    c.advance(120_000);
    assert.equal((await runOnce(wider.config, c.now)).records, 0);
    assert.equal(audit().length, served(sim));
  } finally {
    cleanup();
    await sim.close();
  }
});

test('2. a disabled subscription is restarted and the loss is reported as a gap with its range', async () => {
  const sim = await startSimulator({ seed: 43, records: 300, spanHours: 5 });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 6 });
  try {
    assert.deepEqual((await runOnce(config)).errors, []);
    sim.injectFault({ kind: 'subscription-disabled', route: 'content', count: 1 });
    const s = await runOnce(config);
    assert.equal(s.gaps, 1, 'one gap');
    const feeds = new StateStore(config.state.path).load();
    const gapped = [...feeds.values()].filter((f) => f.s.gaps > 0);
    assert.equal(gapped.length, 1);
    assert.match(gapped[0]!.s.lastError!, /^gap \d{4}-\d\d-\d\dT.*\.\.\d{4}-.*subscription was disabled \(AF20023\) and has been restarted/);
    assert.equal(rx.entries.filter((e) => e.tag === STATUS && (e.record.gaps as number) > 0).length, 1, 'the status record shows it');
  } finally {
    cleanup();
    await sim.close();
  }
});

test('3. a local clock three days fast: a fresh install collects everything, nothing is declared expired', async () => {
  const sim = await startSimulator({ seed: 47, records: 500, spanHours: 20 });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 21 });
  try {
    const fast = () => Date.now() + 3 * D;
    const s = await runOnce(config, fast);
    assert.deepEqual(s.errors, []);
    assert.equal(s.lost, 0);
    assert.equal(new Set(ids()).size, served(sim));
    assert.ok(Math.abs((lastStatus('Audit.Exchange').clockSkewSeconds as number) - 3 * 86400) <= 2);
    // NTP fixes the clock: new content is listed, nothing is re-sent.
    sim.addRecords([{ Id: 'after-ntp', CreationTime: new Date(Date.now() - 60_000).toISOString().slice(0, 19), Workload: 'Exchange', Operation: 'Send' }], { contentType: 'Audit.Exchange', contentCreated: Date.now() - 30_000 });
    const s2 = await runOnce(config);
    assert.equal(s2.records, 1);
    assert.ok(ids().includes('after-ntp'));
  } finally {
    cleanup();
    await sim.close();
  }
});

test('3. a checkpoint saved in the API\'s future (an old collector with a fast clock) is pulled back: new content is collected', async () => {
  const sim = await startSimulator({ seed: 53, records: 100, spanHours: 3 });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 4 });
  try {
    assert.deepEqual((await runOnce(config)).errors, []);
    // What the old collector did: the cursor clamped into the API's future and saved.
    const store = new StateStore(config.state.path);
    for (const f of store.load().values()) f.completeWindow(Date.now() + 2 * D);
    await store.close();
    sim.addRecords([{ Id: 'new-after-fix', CreationTime: new Date(Date.now() - 60_000).toISOString().slice(0, 19), Workload: 'Exchange', Operation: 'Send' }], { contentType: 'Audit.Exchange', contentCreated: Date.now() - 30_000 });
    const s = await runOnce(config);
    assert.deepEqual(s.errors, []);
    assert.ok(ids().includes('new-after-fix'));
    assert.equal(new Set(ids()).size, audit().length, 'nothing re-sent');
  } finally {
    cleanup();
    await sim.close();
  }
});

test('3. certificate credential with the local clock 10 minutes ahead: the client assertion is dated in API time', async () => {
  const cert = await generateClientCertificate();
  const sim = await startSimulator({ seed: 59, records: 50, spanHours: 2, clientCertificates: [cert.certPem] });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, {
    port: rx.port,
    spanHours: 3,
    patch: (t) => {
      const dir = path.dirname(t.api.ca_file);
      writeFileSync(path.join(dir, 'client.key'), cert.keyPem);
      writeFileSync(path.join(dir, 'client.crt'), cert.certPem);
      delete t.tenants[0].client_secret;
      t.tenants[0].certificate = { private_key_file: path.join(dir, 'client.key'), certificate_file: path.join(dir, 'client.crt') };
    },
  });
  try {
    const s = await runOnce(config, () => Date.now() + 10 * 60_000);
    assert.deepEqual(s.errors, []);
    assert.equal(audit().length, 50);
  } finally {
    cleanup();
    await sim.close();
  }
});

test('7. a record larger than max_frame_bytes goes alone; one larger than max_record_bytes is dead-lettered and the rest of its blob delivered', async () => {
  const sim = await startSimulator({ seed: 61, records: 0, spanHours: 2 });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 3, patch: (t) => ((t.output.forward.max_frame_bytes = 64 * 1024), (t.output.forward.max_record_bytes = 1024 * 1024)) });
  try {
    const t = new Date(Date.now() - 600_000).toISOString().slice(0, 19);
    const rec = (id: string, size: number) => ({ Id: id, CreationTime: t, Workload: 'Exchange', Operation: 'Send', Blob: 'x'.repeat(size) });
    sim.addRecords([rec('small-1', 100), rec('big-300k', 300_000), rec('huge-2m', 2_000_000), rec('small-2', 100)], { contentType: 'Audit.Exchange', contentCreated: Date.now() - 300_000 });
    const s = await runOnce(config);
    assert.deepEqual(s.errors, []);
    assert.equal(s.parked, 0, 'the blob is not parked over one record');
    assert.equal(s.deadLettered, 1);
    assert.deepEqual(ids().sort(), ['big-300k', 'small-1', 'small-2']);
    const dl = new DeadLetterFile(deadLetterPath(config.state.path)).read();
    assert.equal(dl.length, 1);
    assert.equal(dl[0]!.id, 'huge-2m');
    assert.match(dl[0]!.reason, /max_record_bytes = 1048576/);
    assert.equal(JSON.parse(dl[0]!.record.toString()).Blob.length, 2_000_000, 'the raw record is kept whole');
    assert.equal(lastStatus('Audit.Exchange').deadLettered, 1);
  } finally {
    cleanup();
    await sim.close();
  }
});

test('8, 9. a CreationTime that cannot be an EventTime is timed by its blob; a record nested deeper than Fluent Bit keeps is dead-lettered in record format, delivered in devo format', async () => {
  const sim = await startSimulator({ seed: 67, records: 0, spanHours: 2 });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 3 });
  try {
    const created = Date.now() - 300_000;
    let deep: unknown = 'leaf';
    for (let i = 0; i < 100; i++) deep = { k: deep };
    sim.addRecords(
      [
        { Id: 'windows-zero', CreationTime: '1601-01-01T00:00:00', Workload: 'Exchange' },
        { Id: 'deep', CreationTime: new Date(created).toISOString().slice(0, 19), Workload: 'Exchange', Deep: deep },
        { Id: 'plain', CreationTime: new Date(created).toISOString().slice(0, 19), Workload: 'Exchange' },
      ],
      { contentType: 'Audit.Exchange', contentCreated: created },
    );
    const s = await runOnce(config);
    assert.deepEqual(s.errors, []);
    assert.deepEqual(ids().sort(), ['plain', 'windows-zero']);
    assert.equal(audit().find((e) => e.record.Id === 'windows-zero')!.timeMs, parseApiTime(sim.blobs()[0]!.contentCreated));
    assert.equal(s.deadLettered, 1);
    assert.equal(lastStatus('Audit.Exchange').timeFallbacks, 1);
    // The same blob in devo format: the record is a string, nothing is too deep.
    rx.entries.length = 0;
    const devo = simConfig(sim, { port: rx.port, spanHours: 3, patch: (t) => (t.output.record_format = 'devo') });
    try {
      const d = await runOnce(devo.config);
      assert.equal(d.deadLettered, 0);
      assert.equal(audit().length, 3);
    } finally {
      devo.cleanup();
    }
  } finally {
    cleanup();
    await sim.close();
  }
});

test('12. the bearer token never goes to a host the API names that is not the configured one', async () => {
  const tls = await generateServerTls('127.0.0.1');
  const seen: string[] = [];
  const evil = https.createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    seen.push(String(req.headers.authorization));
    res.end('[]');
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
  const evilUrl = `https://127.0.0.1:${(evil.address() as AddressInfo).port}`;
  const api = https.createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    const base = req.url!.split('?')[0]!;
    if (base.endsWith('/audit/redirect-away')) {
      res.writeHead(307, { Location: `${evilUrl}/api/v1.0/t/activity/feed/audit/far` });
      return res.end();
    }
    if (base.endsWith('/audit/redirect-home')) {
      res.writeHead(302, { Location: '/api/v1.0/t/activity/feed/audit/home' });
      return res.end();
    }
    if (base.endsWith('/audit/home')) return res.end('[{"Id":"home"}]');
    if (base.endsWith('/subscriptions/content') && !req.url!.includes('nextPage')) {
      res.setHeader('NextPageUri', `${evilUrl}/api/v1.0/t/activity/feed/subscriptions/content?nextPage=x`);
      res.end(JSON.stringify([{ contentType: 'Audit.Exchange', contentId: 'far', contentUri: `${evilUrl}/api/v1.0/t/activity/feed/audit/far`, contentCreated: '2026-11-25T10:00:00.000Z' }]));
      return;
    }
    res.end('[]');
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  const agent = new https.Agent({ ca: tls.caPem });
  try {
    const client = new ApiClient({
      apiUrl: `https://127.0.0.1:${(api.address() as AddressInfo).port}`,
      tenantId: 't',
      publisherIdentifier: 'p',
      tokens: { getToken: async () => 'SECRET-TOKEN' },
      agent,
      timeoutMs: 5000,
      maxAttempts: 1,
      log: silentLogger,
    });
    await assert.rejects(listContent(client, 'Audit.Exchange', Date.now() - H, Date.now(), AbortSignal.timeout(5000)), (e: Error) => {
      assert.match(e.message, new RegExp(`NextPageUri points at https://127\\.0\\.0\\.1:\\d+, not the configured API host`));
      return true;
    });
    await assert.rejects(client.call('GET', `${evilUrl}/api/v1.0/t/activity/feed/audit/far`, 'fetch blob far', AbortSignal.timeout(5000)), /not the configured API host.*the token is not sent there/);
    // Redirects (review finding 7): away from the API host refused and named, on it followed.
    const apiUrl = `https://127.0.0.1:${(api.address() as AddressInfo).port}`;
    await assert.rejects(client.call('GET', `${apiUrl}/api/v1.0/t/activity/feed/audit/redirect-away`, 'fetch blob away', AbortSignal.timeout(5000)), /HTTP 307 with a redirect that points at https:\/\/127\.0\.0\.1:\d+, not the configured API host/);
    const home = await client.call('GET', `${apiUrl}/api/v1.0/t/activity/feed/audit/redirect-home`, 'fetch blob home', AbortSignal.timeout(5000), { raw: true });
    assert.equal(home.raw!.toString(), '[{"Id":"home"}]');
    assert.deepEqual(seen, [], 'nothing reached the other host');
  } finally {
    agent.destroy();
    await new Promise<void>((r) => api.close(() => r()));
    await new Promise<void>((r) => evil.close(() => r()));
  }
});

test('a plain 404 on a blob is retried (not lost at once), then delivered', async () => {
  const c = clock();
  const sim = await startSimulator({ seed: 71, records: 0, spanHours: 2, now: c.now });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 3, patch: (t) => (t.polling.max_attempts = 1) });
  try {
    sim.addRecords([{ Id: 'four-oh-four', CreationTime: new Date(c.now() - 600_000).toISOString().slice(0, 19), Workload: 'Exchange' }], { contentType: 'Audit.Exchange', contentCreated: c.now() - 300_000 });
    sim.injectFault({ kind: '404', route: 'blob', count: 1 });
    const first = await runOnce(config, c.now);
    assert.equal(first.lost, 0);
    assert.equal(first.parked, 1);
    c.advance(10 * 60_000);
    const second = await runOnce(config, c.now);
    assert.equal(second.records, 1);
    assert.deepEqual(ids(), ['four-oh-four']);
  } finally {
    cleanup();
    await sim.close();
  }
});

test('hard shapes reach the receiver as the same JSON value (big integers exact, floats stay floats, key order kept)', async () => {
  const lines = [
    '{"Id":"shapes","CreationTime":"2026-11-30T10:00:00.1234567","Workload":"Exchange","big":9007199254740993,"neg":-9223372036854775808,"f":1.50,"e":1E1,"z":-0,"2":"b","1":"a","dup":1,"dup":2,"u":"é😀\\u00e9\\ud83d\\ude00","nest":{"a":[1,{"b":[]}],"x":1156492.00}}',
  ];
  const corpus = parseCorpus(lines.join('\n'), 'shapes.ndjson');
  const sim = await startSimulator({ seed: 73, records: 0, spanHours: 2 });
  const exact = await startForwardReceiver({ exactIntegers: true });
  const { config, cleanup } = simConfig(sim, { port: exact.port, spanHours: 3 });
  try {
    sim.addRecords(corpus, { contentType: 'Audit.Exchange', contentCreated: Date.now() - 300_000 });
    const s = await runOnce(config);
    assert.deepEqual(s.errors, []);
    const e = exact.entries.find((x) => x.record.Id === 'shapes')!;
    // The msgpack map as it arrived, typed: key order, duplicates, int vs float, -0, 64-bit ints.
    sameValue(mpDecode(e.rawRecord!), reference(lines[0]!), 'the record is the same JSON value');
    assert.equal(e.nanos, 123_456_700, 'CreationTime to the nanosecond');
  } finally {
    cleanup();
    await exact.close();
    await sim.close();
  }
});

test('a feed removed from the config is reported with what its retry queue still holds, and dropped from the state', async () => {
  const sim = await startSimulator({ seed: 79, records: 0, spanHours: 2 });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 3, patch: (t) => (t.polling.max_attempts = 1) });
  try {
    sim.addRecords([{ Id: 'stuck', CreationTime: new Date(Date.now() - 600_000).toISOString().slice(0, 19), Workload: 'SharePoint' }], { contentType: 'Audit.SharePoint', contentCreated: Date.now() - 300_000 });
    sim.injectFault({ kind: '500', route: 'blob', count: 1 });
    assert.equal((await runOnce(config)).parked, 1);
    const fewer = simConfig(sim, { port: rx.port, spanHours: 3, dir: path.dirname(config.state.path), patch: (t) => (t.tenants[0].content_types = ['Audit.Exchange']) });
    const sink = new ForwardSink(fewer.config.output.forward, silentLogger);
    const collector = new Collector({ config: fewer.config, sink, store: new StateStore(fewer.config.state.path), log: silentLogger });
    try {
      await collector.runOnce(AbortSignal.timeout(60_000));
      const parked = sim.blobs().find((b) => b.contentType === 'Audit.SharePoint')!;
      const removed = collector.removedFeeds.find((f) => f.key === 'simulator/Audit.SharePoint')!;
      assert.equal(removed.retryQueue, 1);
      assert.deepEqual(removed.retryContentIds, [parked.contentId]);
      assert.ok(removed.retryFrom && removed.retryFrom === removed.retryTo, 'the parked blob\'s contentCreated');
      assert.equal(collector.removedFeeds.length, 4);
    } finally {
      await collector.close();
      await sink.close();
    }
    const after = new StateStore(config.state.path).load();
    assert.deepEqual([...after.keys()], ['simulator/Audit.Exchange'], 'the removed feeds are dropped; the kept one stays');
  } finally {
    cleanup();
    await sim.close();
  }
});

test('3. the local clock jumping a day forward while the collector runs: no false expiry, no gap, nothing re-sent (API time is carried on the monotonic clock)', async () => {
  const sim = await startSimulator({ seed: 83, records: 200, spanHours: 5 });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 6, patch: (t) => ((t.polling.initial_lookback = '167h'), (t.polling.max_attempts = 1)) });
  let jump = 0;
  const sink = new ForwardSink(config.output.forward, silentLogger);
  const collector = new Collector({ config, sink, store: new StateStore(config.state.path), log: silentLogger, clock: () => Date.now() + jump, monotonic: () => performance.now() });
  try {
    // A blob 160 h old (it expires in 8 h) that fails once: parked, still fetchable for hours.
    sim.addRecords([{ Id: 'old-parked', CreationTime: new Date(Date.now() - 161 * H).toISOString().slice(0, 19), Workload: 'Exchange' }], { contentType: 'Audit.Exchange', contentCreated: Date.now() - 160 * H });
    sim.injectFault({ kind: '500', route: 'blob', count: 1 });
    const first = await collector.runOnce(AbortSignal.timeout(60_000));
    assert.equal(first.parked, 1);
    const delivered = audit().length;
    jump = 24 * H; // NTP steps the local clock a day forward
    const second = await collector.runOnce(AbortSignal.timeout(60_000));
    assert.equal(second.lost, 0, 'the parked blob is not declared expired');
    assert.equal(second.gaps, 0);
    assert.equal(second.late, 0);
    assert.equal(audit().length, delivered, 'nothing re-sent');
    assert.equal(second.waiting, 1, 'still parked, to be retried');
  } finally {
    await collector.close();
    await sink.close();
    cleanup();
    await sim.close();
  }
});

test('2. a new tenant whose subscription is found disabled right after it was started: started again, the gap reported, the poll goes on', async () => {
  const sim = await startSimulator({ seed: 89, records: 200, spanHours: 5 });
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 6 });
  try {
    // AF20022 (none yet) → start → the very next listing meets AF20023 (disabled) → start again.
    sim.injectFault({ kind: 'subscription-disabled', route: 'content', count: 1 });
    const s = await runOnce(config);
    assert.deepEqual(s.errors, [], 'no poll failed');
    assert.equal(s.gaps, 1);
  } finally {
    cleanup();
    await sim.close();
  }
});
