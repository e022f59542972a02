/**
 * Metrics and health (issue 8) over real sockets: a collector against the embedded simulator and a
 * Forward receiver on loopback, its /metrics parsed by a Prometheus text-format parser and compared
 * with the collector's own counts, /healthz going 503 when the output never acks and when a tenant
 * cannot start (stall_after made small: the test waits seconds, never asserts a duration), and
 * the `run` command serving both where metrics.listen says, then closing them on SIGTERM.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import parsePrometheus, { type ParsedFamily } from 'parse-prometheus-text-format';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { startMetrics, type RunningMetrics } from '../../src/metrics/index.ts';
import { Collector } from '../../src/polling/collector.ts';
import { ForwardSink } from '../../src/sink/forward-sink.ts';
import { startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { StateStore } from '../../src/state/state-store.ts';
import { silentLogger } from '../../src/support/logger.ts';
import { spawnCli } from '../helpers/cli.ts';
import { startForwardReceiver } from '../helpers/forward-receiver.ts';

const STATUS = 'm365forward.status';
const TEMPLATE_PREFIX = 'cloud.office365.management.';
const LOOPBACK_ANY_PORT = { host: '127.0.0.1', port: 0 };

let sim: Simulator;
let dir: string;
before(async () => {
  sim = await startSimulator({ seed: 808, records: 400, spanHours: 5 });
  dir = mkdtempSync(path.join(os.tmpdir(), 'm365-metrics-'));
  writeFileSync(path.join(dir, 'ca.pem'), sim.caPem);
});
after(async () => {
  await sim.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A config tree for the simulator's tenant (named contoso) and a receiver; `extra` merges over it. */
function tree(name: string, port: number, extra: Record<string, any> = {}): Record<string, any> {
  return {
    tenants: [{ name: 'contoso', tenant_id: sim.tenantId, client_id: sim.clientId, client_secret: sim.clientSecret, api_url: sim.apiUrl, login_url: sim.loginUrl }],
    api: { ca_file: path.join(dir, 'ca.pem') },
    output: { type: 'forward', forward: { host: '127.0.0.1', port, ack_timeout: '5s' } },
    state: { path: path.join(dir, `${name}.state.json`) },
    polling: { interval: '1s', initial_lookback: '6h' },
    ...extra,
  };
}
const configOf = (name: string, t: Record<string, any>): Config => parseConfig(t, path.join(dir, `${name}.yaml`));

/** A collector, its Forward output and its metrics on an ephemeral loopback port; stop() undoes all. */
async function withMetrics(config: Config) {
  const sink = new ForwardSink(config.output.forward, silentLogger);
  const collector = new Collector({ config, sink, store: new StateStore(config.state.path), log: silentLogger });
  const metrics = (await startMetrics(collector, silentLogger, LOOPBACK_ANY_PORT)) as RunningMetrics;
  return {
    sink,
    collector,
    metrics,
    port: metrics.address.port,
    async stop() {
      await metrics.close();
      await collector.close();
      await sink.close();
    },
  };
}

/** One GET on a fresh connection. */
function get(port: number, p: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
      })
      .on('error', reject);
  });
}

/**
 * The exposition parsed twice: as it is (syntax and types), and with histogram TYPE lines
 * dropped, because parse-prometheus-text-format 1.1.1 folds a labelled histogram's series into one
 * (labels, count and sum lost); without its TYPE each `_bucket`/`_sum`/`_count` series keeps them.
 */
async function scrape(port: number): Promise<{ fams: ParsedFamily[]; flat: ParsedFamily[]; type: string }> {
  const r = await get(port, '/metrics');
  assert.equal(r.status, 200);
  return { fams: parsePrometheus(r.body), flat: parsePrometheus(r.body.replace(/^# TYPE \S+ histogram$/gm, '')), type: r.type };
}
/** Every sample of a metric name (a name may repeat in the `flat` parse), with its labels. */
const samples = (fams: ParsedFamily[], name: string) => fams.filter((f) => f.name === name).flatMap((f) => f.metrics);
const labelsMatch = (have: Record<string, string> | undefined, want: Record<string, string>) => Object.entries(want).every(([k, v]) => have?.[k] === v);
/** The sum of a metric's samples whose labels include `want`. */
const total = (fams: ParsedFamily[], name: string, want: Record<string, string> = {}) =>
  samples(fams, name)
    .filter((s) => labelsMatch(s.labels, want))
    .reduce((n, s) => n + Number(s.value ?? s.count), 0);
const typeOf = (fams: ParsedFamily[], name: string) => fams.find((f) => f.name === name)?.type;

/** Polls /healthz until `done` accepts an answer (the collector's own pace; bounded, never a timing assertion). */
async function healthUntil(port: number, done: (status: number, body: any) => boolean): Promise<{ status: number; body: any }> {
  let last: { status: number; body: any } | undefined;
  for (let i = 0; i < 600; i++) {
    const r = await get(port, '/healthz');
    last = { status: r.status, body: JSON.parse(r.body) };
    if (done(last.status, last.body)) return last;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.fail(`/healthz never answered as expected; last: ${JSON.stringify(last)}`);
}

test('after a run, /metrics holds the collector\'s own counts by name and label, and /healthz is ok', async () => {
  const rx = await startForwardReceiver();
  const config = configOf('counts', tree('counts', rx.port, { metrics: { stall_after: '30m' } }));
  const c = await withMetrics(config);
  try {
    const summary = await c.collector.runOnce(AbortSignal.timeout(60_000));
    assert.deepEqual(summary.errors, []);
    assert.ok(summary.records > 0);
    const { fams, flat, type } = await scrape(c.port);
    assert.equal(type, 'text/plain; version=0.0.4; charset=utf-8');

    // Records by table: what the receiver got per tag, and per feed what the checkpoint counted.
    assert.equal(typeOf(fams, 'm365_forward_records_total'), 'COUNTER');
    const byTable = new Map<string, number>();
    for (const e of rx.entries) if (e.tag !== STATUS) byTable.set(e.tag.slice(TEMPLATE_PREFIX.length), (byTable.get(e.tag.slice(TEMPLATE_PREFIX.length)) ?? 0) + 1);
    assert.ok(byTable.size > 3, 'records of several tables');
    for (const [table, n] of byTable) assert.equal(total(fams, 'm365_forward_records_total', { table }), n, `table ${table}`);
    assert.equal(total(fams, 'm365_forward_records_total'), summary.records);
    for (const f of c.collector.feeds) {
      const feed = { tenant: 'contoso', content_type: f.deps.contentType };
      assert.equal(total(fams, 'm365_forward_records_total', feed), f.checkpoint.s.recordsDelivered, `records of ${f.deps.contentType}`);
      assert.equal(total(fams, 'm365_forward_blobs_total', feed), f.checkpoint.s.blobsDelivered);
      assert.equal(total(fams, 'm365_forward_retry_queue_blobs', feed), 0);
      assert.equal(total(fams, 'm365_forward_feed_stalled', feed), 0);
      assert.equal(samples(fams, 'm365_forward_lag_seconds').filter((s) => labelsMatch(s.labels, feed)).length, 1);
    }
    assert.equal(total(fams, 'm365_forward_blobs_total'), summary.blobs);
    assert.equal(total(fams, 'm365_forward_lost_blobs_total'), 0);
    assert.equal(total(fams, 'm365_forward_dead_lettered_records_total'), 0);
    assert.equal(total(fams, 'm365_forward_tenant_up', { tenant: 'contoso' }), 1);

    // API requests: every one the client made, by operation and code, as the simulator counted them.
    const api = c.collector.tenants[0]!.api;
    assert.equal(total(fams, 'm365_forward_api_requests_total'), api.stats.requests);
    // (The simulator's route names: content = listing content, list = listing subscriptions.)
    const routes = sim.stats().byRoute;
    assert.equal(total(fams, 'm365_forward_api_requests_total', { operation: 'list' }), routes.content);
    assert.equal(total(fams, 'm365_forward_api_requests_total', { operation: 'blob', code: '200' }), routes.blob);
    assert.equal(total(fams, 'm365_forward_api_requests_total', { operation: 'subscriptions', code: '200' }), routes.list);
    // A new tenant has no subscriptions: the first listing of each feed is refused (AF20022) and the feed starts it.
    const feedsCount = config.tenants[0]!.contentTypes.length;
    assert.equal(total(fams, 'm365_forward_api_requests_total', { operation: 'start' }), routes.start);
    assert.equal(routes.start, feedsCount);
    assert.equal(total(fams, 'm365_forward_api_requests_total', { operation: 'list', code: '400' }), feedsCount);
    assert.equal(typeOf(fams, 'm365_forward_api_request_duration_seconds'), 'HISTOGRAM');
    assert.equal(total(flat, 'm365_forward_api_request_duration_seconds_count'), api.stats.requests);
    assert.equal(total(fams, 'm365_forward_throttled_total', { tenant: 'contoso' }), api.stats.throttled);

    // The output: one ack latency per acked frame; records acked include the status records.
    assert.equal(typeOf(fams, 'm365_forward_output_ack_duration_seconds'), 'HISTOGRAM');
    assert.equal(Number(samples(fams, 'm365_forward_output_ack_duration_seconds')[0]!.count), c.sink.stats.framesAcked);
    assert.equal(total(fams, 'm365_forward_output_frames_acked_total'), c.sink.stats.framesAcked);
    assert.equal(total(fams, 'm365_forward_output_records_acked_total'), rx.entries.length);
    assert.equal(total(fams, 'm365_forward_output_stalled_seconds'), 0);
    assert.ok(samples(fams, 'process_resident_memory_bytes').length === 1);

    const h = await get(c.port, '/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.type, 'application/json; charset=utf-8');
    assert.deepEqual(JSON.parse(h.body), { status: 'ok' });
    assert.equal((await get(c.port, '/state')).status, 404);
  } finally {
    await c.stop();
    await rx.close();
  }
  assert.equal(c.collector.tenants[0]!.api.observer, undefined, 'closing the metrics takes the observers off');
  assert.equal(c.sink.ackObserver, undefined);
});

test('/healthz goes 503 naming every feed and the output when the receiver never acks', async () => {
  const rx = await startForwardReceiver({ ack: 'never' });
  const config = configOf('stall', tree('stall', rx.port, { metrics: { stall_after: '2s' } }));
  const c = await withMetrics(config);
  const ac = new AbortController();
  const running = c.collector.runForever(ac.signal).catch((e) => e);
  try {
    // The feeds with content wait for acks for ever; one without any (no blobs listed) completes its polls.
    const feeds = [...new Set(sim.blobs().map((b) => `contoso/${b.contentType}`))];
    assert.ok(feeds.length >= 3);
    const { status, body } = await healthUntil(c.port, (_s, b) => b.status === 'stalled' && feeds.every((f) => b.reasons.some((r: any) => r.feed === f)) && b.reasons.some((r: any) => r.output));
    assert.equal(status, 503);
    assert.equal(body.stallAfterSeconds, 2);
    for (const r of body.reasons) {
      if (r.feed) assert.ok(r.feed.startsWith('contoso/') && r.idleSeconds >= 2 && r.tenantStarted === undefined, JSON.stringify(r));
    }
    const out = body.reasons.find((r: any) => r.output);
    assert.equal(out.output, `forward tcp://127.0.0.1:${rx.port}`);
    assert.ok(out.noAckSeconds >= 2);
    const { fams } = await scrape(c.port);
    for (const f of feeds) assert.equal(total(fams, 'm365_forward_feed_stalled', { tenant: 'contoso', content_type: f.slice('contoso/'.length) }), 1);
    assert.ok(total(fams, 'm365_forward_output_stalled_seconds') > 2);
    // Records went out but none was acked: none is counted as delivered.
    assert.ok(rx.entries.length > 0);
    assert.equal(total(fams, 'm365_forward_records_total'), 0);
    assert.equal(total(fams, 'm365_forward_blobs_total'), 0);
  } finally {
    ac.abort();
    await running;
    await c.stop();
    await rx.close();
  }
});

test('a tenant that cannot start counts as not progressing: /healthz names its feeds and why', async () => {
  const rx = await startForwardReceiver();
  const t = tree('refused', rx.port, { metrics: { stall_after: '2s' } });
  // The same directory tenant under a second name, with a wrong secret and a content type of its own.
  t.tenants[0].content_types = ['Audit.Exchange'];
  t.tenants.push({ ...t.tenants[0], name: 'refused', client_secret: 'not-the-secret-0123456789abcdefghijklmnop', content_types: ['Audit.General', 'DLP.All'] });
  const config = configOf('refused', t);
  const c = await withMetrics(config);
  const ac = new AbortController();
  const running = c.collector.runForever(ac.signal).catch((e) => e);
  try {
    const wanted = ['refused/Audit.General', 'refused/DLP.All'];
    const { status, body } = await healthUntil(c.port, (_s, b) => b.status === 'stalled' && wanted.every((f) => b.reasons.some((r: any) => r.feed === f)));
    assert.equal(status, 503);
    for (const f of wanted) {
      const r = body.reasons.find((x: any) => x.feed === f);
      assert.equal(r.tenantStarted, false);
      assert.ok(r.idleSeconds >= 2);
      assert.match(r.error, /secret|credential|AADSTS|refused|invalid_client/i);
      assert.ok(!r.error.includes('not-the-secret'), 'the secret is never shown');
    }
    const { fams } = await scrape(c.port);
    assert.equal(total(fams, 'm365_forward_tenant_up', { tenant: 'refused' }), 0);
    assert.equal(total(fams, 'm365_forward_tenant_up', { tenant: 'contoso' }), 1);
    assert.equal(total(fams, 'm365_forward_feed_stalled', { tenant: 'refused', content_type: 'DLP.All' }), 1);
  } finally {
    ac.abort();
    await running;
    await c.stop();
    await rx.close();
  }
});

/** A loopback port that was free a moment ago (the CLI needs a number in its config). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** The CLI's config file with metrics.listen at `port`. */
function cliConfig(name: string, rxPort: number, metricsPort: number): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(tree(name, rxPort, { metrics: { listen: `127.0.0.1:${metricsPort}` } })));
  return file;
}

test('run serves /metrics and /healthz at metrics.listen and stops listening on SIGTERM', async () => {
  const rx = await startForwardReceiver();
  const port = await freePort();
  const child = spawnCli(['run', '-c', cliConfig('cli', rx.port, port)]);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = once(child, 'close');
  try {
    for (let i = 0; i < 600 && !stderr.includes('"metrics listening"'); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(stderr, /"msg":"metrics listening","listen":"127\.0\.0\.1:\d+"/);
    const h = await get(port, '/healthz');
    assert.equal(h.status, 200, h.body);
    const { fams } = await scrape(port);
    assert.ok(samples(fams, 'm365_forward_tenant_up').length === 1);
    child.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, stderr);
    await assert.rejects(get(port, '/healthz'), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await rx.close();
  }
});

test('run refuses to start, in one line naming metrics.listen, when the port is taken', async () => {
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const port = (busy.address() as net.AddressInfo).port;
  const child = spawnCli(['run', '--once', '-c', cliConfig('busy', 1, port)]);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  try {
    const [code] = await once(child, 'close');
    assert.equal(code, 2, stderr);
    assert.equal(stderr, `m365-forward: metrics.listen 127.0.0.1:${port}: cannot listen: the port is already in use (another process listens there): choose another port\n`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await new Promise((r) => busy.close(r));
  }
});
