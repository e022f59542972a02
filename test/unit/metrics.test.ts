/**
 * Metrics and health (issue 8): the /healthz decision, the label mappings, `metrics.*` in the
 * config, the HTTP server over a real loopback socket, and the registry read from a stand-in
 * collector with a fake monotonic clock (no waiting, no timing asserted).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { describe, test } from 'node:test';
import parsePrometheus, { type ParsedFamily } from 'parse-prometheus-text-format';
import { parseConfig } from '../../src/config/load.ts';
import { CollectorError } from '../../src/errors.ts';
import type { ApiClient } from '../../src/management-api/api-client.ts';
import { fetchBlobPages } from '../../src/management-api/fetch-blob.ts';
import { listContentPages } from '../../src/management-api/list-content.ts';
import { listSubscriptions, startSubscription, stopSubscription } from '../../src/management-api/subscriptions.ts';
import { decideHealth, type FeedProgress } from '../../src/metrics/health.ts';
import { apiCode, apiOperation, OTHER_TABLE, tableOfTag } from '../../src/metrics/labels.ts';
import { formatListen, parseListen } from '../../src/metrics/listen.ts';
import { createCollectorMetrics, type MetricsSource } from '../../src/metrics/registry.ts';
import { startMetricsServer, type MetricsEndpoints } from '../../src/metrics/server.ts';
import { OTHER_TAGS } from '../../src/polling/feed-poller.ts';
import { silentLogger } from '../../src/support/logger.ts';

const MIN = 60_000;

describe('decideHealth', () => {
  const feed = (feed: string, idleMs: number, extra: Partial<FeedProgress> = {}): FeedProgress => ({ feed, idleMs, tenantStarted: true, ...extra });
  const quietOutput = { output: 'forward tcp://127.0.0.1:24224', stalledMs: 0 };

  test('ok while every feed progressed within stall_after and the output has nothing unacked for that long', () => {
    assert.deepEqual(decideHealth([feed('a/Audit.Exchange', 29 * MIN), feed('a/DLP.All', 30 * MIN)], { ...quietOutput, stalledMs: 30 * MIN }, 30 * MIN), { status: 'ok' });
  });

  test('a feed idle longer than stall_after is named with how long, the others are not', () => {
    const h = decideHealth([feed('a/Audit.Exchange', 31 * MIN, { error: 'list failed: HTTP 500' }), feed('a/DLP.All', 1000)], quietOutput, 30 * MIN);
    assert.deepEqual(h, { status: 'stalled', stallAfterSeconds: 1800, reasons: [{ feed: 'a/Audit.Exchange', idleSeconds: 1860, error: 'list failed: HTTP 500' }] });
  });

  test('a feed of a tenant that could not start says so, with the tenant\'s error', () => {
    const h = decideHealth([feed('refused/Audit.General', 31 * MIN, { tenantStarted: false, error: 'credentials refused' })], quietOutput, 30 * MIN);
    assert.deepEqual(h, { status: 'stalled', stallAfterSeconds: 1800, reasons: [{ feed: 'refused/Audit.General', idleSeconds: 1860, tenantStarted: false, error: 'credentials refused' }] });
  });

  test('an output with no ack for longer than stall_after is a reason of its own', () => {
    const h = decideHealth([feed('a/Audit.Exchange', 1000)], { output: 'forward tcp://127.0.0.1:24224', stalledMs: 40 * MIN, lastError: 'connection refused' }, 30 * MIN);
    assert.deepEqual(h, { status: 'stalled', stallAfterSeconds: 1800, reasons: [{ output: 'forward tcp://127.0.0.1:24224', noAckSeconds: 2400, lastError: 'connection refused' }] });
  });
});

describe('labels', () => {
  test('every call text the API modules use maps to its operation', async () => {
    // The texts come from the real callers, so a reworded `what` cannot silently become "other".
    const seen: string[] = [];
    const api = {
      feedUrl: (op: string) => `https://api.test/${op}`,
      foreignHost: () => undefined,
      call: async (_m: string, _u: string, what: string) => {
        seen.push(what);
        return { status: 200, headers: new Map<string, string>(), body: what === 'list subscriptions' ? [] : [], raw: Buffer.from('[]') };
      },
    } as unknown as ApiClient;
    const signal = AbortSignal.timeout(10_000);
    for await (const page of listContentPages(api, 'Audit.Exchange', Date.UTC(2024, 0, 1), Date.UTC(2024, 0, 1, 1), signal)) void page;
    await fetchBlobPages(api, 'https://api.test/audit/x', '20240101$x', signal);
    await startSubscription(api, 'Audit.Exchange', signal);
    await stopSubscription(api, 'Audit.Exchange', signal);
    await listSubscriptions(api, signal);
    assert.deepEqual(seen.map(apiOperation), ['list', 'blob', 'start', 'stop', 'subscriptions']);
    assert.equal(apiOperation('something new'), 'other');
  });

  test('the code label is the HTTP status, or no_response', () => {
    assert.equal(apiCode(429), '429');
    assert.equal(apiCode(0), 'no_response');
  });

  test('the table label undoes the tag template', () => {
    const def = tableOfTag('cloud.office365.management.{table}', OTHER_TAGS);
    assert.equal(def('cloud.office365.management.exchange'), 'exchange');
    assert.equal(def('cloud.office365.management.microsoftteams'), 'microsoftteams');
    assert.equal(def(OTHER_TAGS), OTHER_TABLE);
    assert.equal(def('something.else'), 'something.else', 'a tag the template does not make is its own table');
    const custom = tableOfTag('m365.{table}.audit+{table}', OTHER_TAGS);
    assert.equal(custom('m365.exchange.audit+exchange'), 'exchange');
    assert.equal(custom('m365.exchange.audit+general'), 'm365.exchange.audit+general');
  });
});

describe('metrics.listen', () => {
  test('HOST:PORT, a name, and [IPv6]:PORT', () => {
    assert.deepEqual(parseListen('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
    assert.deepEqual(parseListen(' localhost:9464 '), { host: 'localhost', port: 9464 });
    assert.deepEqual(parseListen('0.0.0.0:1'), { host: '0.0.0.0', port: 1 });
    assert.deepEqual(parseListen('[::1]:65535'), { host: '::1', port: 65535 });
    assert.equal(formatListen({ host: '::1', port: 9464 }), '[::1]:9464');
  });

  test('anything else is refused with what to write', () => {
    for (const bad of [9464, '9464', 'localhost', ':9464', '127.0.0.1:0', '127.0.0.1:70000', '::1:9464', '[nothost]:9464', 'http://127.0.0.1:9464/metrics', 'bad_host!:9464', '']) {
      const r = parseListen(bad);
      assert.ok('problem' in r, `accepted ${JSON.stringify(bad)}`);
      assert.match(r.problem, /^must be HOST:PORT, like 127\.0\.0\.1:9464/);
      assert.doesNotMatch(r.problem, /\n/);
    }
    assert.match((parseListen(':9464') as { problem: string }).problem, /host is missing \(write 0\.0\.0\.0/);
  });

  test('a secret pasted there is not echoed', () => {
    const secret = 'Qx8~kT2vN9pL4mR7wZ1yB5cF3hJ6dS0aG8eU:1234';
    const r = parseListen(secret) as { problem: string };
    assert.ok(!r.problem.includes('Qx8~kT2v'), r.problem);
  });
});

describe('config: the metrics section', () => {
  const T = '11111111-2222-3333-4444-555555555555';
  const C = '66666666-7777-8888-9999-000000000000';
  const io = { env: {}, readFile: () => { throw Object.assign(new Error('no'), { code: 'ENOENT' }); } };
  const cfg = (extra: Record<string, unknown>) => parseConfig({ tenants: [{ tenant_id: T, client_id: C, client_secret: 'x' }], ...extra }, '/etc/m365/config.yaml', {}, io);
  const problems = (extra: Record<string, unknown>): string => {
    try {
      cfg(extra);
    } catch (err) {
      assert.ok(err instanceof CollectorError && err.code === 'CONFIG_INVALID');
      return err.message;
    }
    return assert.fail('accepted');
  };

  test('off by default; stall_after follows status.stall_after unless set', () => {
    assert.deepEqual(cfg({}).metrics, { stallAfterMs: 30 * MIN });
    assert.deepEqual(cfg({ status: { stall_after: '2h' } }).metrics, { stallAfterMs: 120 * MIN });
    assert.deepEqual(cfg({ metrics: { listen: '127.0.0.1:9464', stall_after: '10m' } }).metrics, { listen: { host: '127.0.0.1', port: 9464 }, stallAfterMs: 10 * MIN });
    assert.deepEqual(cfg({ polling: { interval: '1s' }, metrics: { stall_after: '2s' } }).metrics.stallAfterMs, 2000);
  });

  test('invalid values are refused with their key', () => {
    assert.match(problems({ metrics: { listen: 'localhost' } }), /metrics\.listen: must be HOST:PORT/);
    assert.match(problems({ metrics: { stall_after: '500ms' } }), /metrics\.stall_after: must be between 1s and 7d/);
    assert.match(problems({ metrics: { stall_after: '30s' } }), /metrics\.stall_after: must be longer than polling\.interval \(1m\), got 30s/);
    assert.match(problems({ metrics: { port: 9464 } }), /metrics\.port: unknown key/);
    assert.match(problems({ metrics: 'on' }), /metrics: must be a mapping/);
  });
});

/** GET (or another method) on the loopback server, on a fresh connection. */
function request(port: number, path: string, method = 'GET', agent: http.Agent | false = false): Promise<{ status: number; type: string; body: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent }, (res) => {
      const socket = res.socket; // a keep-alive agent takes it back at the end
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body, socket }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the HTTP server', () => {
  test('/metrics, /healthz (200 then 503), HEAD, 404 and 405; close() ends kept-alive connections', async () => {
    let stalled = false;
    const endpoints: MetricsEndpoints = {
      metrics: async () => '# HELP x_total a test\n# TYPE x_total counter\nx_total 3\n',
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
      health: () => (stalled ? { status: 'stalled', stallAfterSeconds: 60, reasons: [{ feed: 'a/DLP.All', idleSeconds: 61 }] } : { status: 'ok' }),
    };
    const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, endpoints, silentLogger);
    const keepAlive = new http.Agent({ keepAlive: true });
    try {
      const { port } = server.address;
      const m = await request(port, '/metrics');
      assert.equal(m.status, 200);
      assert.equal(m.type, 'text/plain; version=0.0.4; charset=utf-8');
      assert.equal(parsePrometheus(m.body)[0]!.metrics[0]!.value, '3');
      const ok = await request(port, '/healthz?verbose=1');
      assert.equal(ok.status, 200);
      assert.equal(ok.type, 'application/json; charset=utf-8');
      assert.deepEqual(JSON.parse(ok.body), { status: 'ok' });
      stalled = true;
      const bad = await request(port, '/healthz');
      assert.equal(bad.status, 503);
      assert.deepEqual(JSON.parse(bad.body), { status: 'stalled', stallAfterSeconds: 60, reasons: [{ feed: 'a/DLP.All', idleSeconds: 61 }] });
      const head = await request(port, '/healthz', 'HEAD');
      assert.equal(head.status, 503);
      assert.equal(head.body, '');
      assert.equal((await request(port, '/')).status, 404);
      assert.equal((await request(port, '/metrics/../state')).status, 404);
      assert.equal((await request(port, '/metrics', 'POST')).status, 405);
      // A scraper that keeps its connection open does not hold close() up.
      const kept = await request(port, '/metrics', 'GET', keepAlive);
      assert.equal(kept.socket.destroyed, false);
      kept.socket.ref(); // the agent unrefs an idle socket: keep the loop alive to see it close
      const socketClosed = once(kept.socket, 'close');
      await server.close();
      await socketClosed;
      await assert.rejects(request(port, '/metrics'), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
    } finally {
      keepAlive.destroy();
      await server.close();
    }
  });

  test('a port in use is one CONFIG_INVALID line naming metrics.listen', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const endpoints: MetricsEndpoints = { metrics: async () => '', contentType: 'text/plain', health: () => ({ status: 'ok' }) };
      await assert.rejects(startMetricsServer({ host: '127.0.0.1', port }, endpoints, silentLogger), (e: unknown) => {
        assert.ok(e instanceof CollectorError);
        assert.equal(e.code, 'CONFIG_INVALID');
        assert.equal(e.message, `metrics.listen 127.0.0.1:${port}: cannot listen: the port is already in use (another process listens there): choose another port`);
        return true;
      });
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });
});

describe('the registry, read from a stand-in collector', () => {
  const TEMPLATE = 'cloud.office365.management.{table}';
  const API_NOW = Date.UTC(2024, 5, 1, 12);

  /** Two tenants: contoso polled (one feed), fabrikam left out with its error and a checkpoint from an earlier run. */
  function standIn(now: () => number, stalledMs = 0) {
    const tenantRt = (name: string, contentTypes: string[], throttled: number) => ({
      tenant: { name, contentTypes },
      api: { stats: { throttled, retried: 2, requests: 9 }, observer: undefined as ApiClient['observer'] },
      clock: { now: () => API_NOW, skewMs: name === 'contoso' ? 1500 : undefined },
    });
    const contoso = tenantRt('contoso', ['Audit.Exchange'], 3);
    const fabrikam = tenantRt('fabrikam', ['Audit.General', 'DLP.All'], 0);
    const checkpoint = (n: number) => ({
      s: { blobsDelivered: n, recordsDelivered: 10 * n, lost: 1, gaps: 2, deadLettered: 4, lateBlobs: 5, maxLatenessSeconds: 90, lastError: undefined as string | undefined },
      retry: { size: 6 },
      cursor: API_NOW - 120_000,
    });
    const poller = {
      deps: { tenant: contoso.tenant, contentType: 'Audit.Exchange' },
      checkpoint: checkpoint(3),
      counters: { timeFallbacks: 7, progressAt: now(), lastSuccessAt: API_NOW - 5000 },
      recordsByTag: new Map([
        ['cloud.office365.management.exchange', 20],
        ['cloud.office365.management.microsoftteams', 8],
        [OTHER_TAGS, 2],
      ]),
    };
    const src = {
      feeds: [poller],
      tenants: [contoso, fabrikam],
      failedTenants: new Map([[fabrikam, { message: 'tenant fabrikam: the credentials were refused (AADSTS7000215)' }]]),
      deps: {
        config: { routing: { tagTemplate: TEMPLATE }, metrics: { stallAfterMs: 30 * MIN } },
        sink: { description: 'forward tcp://127.0.0.1:24224', health: () => ({ waiting: stalledMs > 0, stalledMs }) },
        store: { feeds: new Map([['fabrikam/Audit.General', checkpoint(11)]]) },
      },
    } as unknown as MetricsSource;
    return { src, poller, contoso, fabrikam };
  }

  /**
   * parse-prometheus-text-format 1.1.1 folds the series of a labelled histogram into one (it keeps
   * the buckets of the last and drops their labels, count and sum): the text is parsed once as it
   * is (checks its syntax and types) and once with histogram TYPE lines removed, which turns each
   * `_bucket`, `_sum`, `_count` into families of their own (one per series) that keep their labels.
   */
  const parseBoth = (text: string) => ({ fams: parsePrometheus(text), flat: parsePrometheus(text.replace(/^# TYPE \S+ histogram$/gm, '')) });
  const family = (fams: ParsedFamily[], name: string) => {
    const f = fams.find((x) => x.name === name);
    assert.ok(f, `no ${name} in the output`);
    return f;
  };
  /** The sample of a family whose labels are exactly these. */
  const sample = (fams: ParsedFamily[], name: string, labels: Record<string, string> = {}) => {
    family(fams, name);
    // (A family name can repeat in the `flat` parse: one per histogram series.)
    const s = fams.filter((f) => f.name === name).flatMap((f) => f.metrics).find((m) => JSON.stringify(m.labels ?? {}) === JSON.stringify(labels));
    assert.ok(s, `no ${name}${JSON.stringify(labels)}`);
    return s;
  };
  const value = (fams: ParsedFamily[], name: string, labels: Record<string, string> = {}) => Number(sample(fams, name, labels).value);

  test('feed, tenant and API values as the collector holds them; the observers count requests', async () => {
    let t = 5_000_000;
    const { src, contoso, fabrikam } = standIn(() => t);
    const m = createCollectorMetrics(src, { stallAfterMs: 30 * MIN, now: () => t });
    try {
      contoso.api.observer!('fetch blob 20240601$abc', 200, 250);
      contoso.api.observer!('list Audit.Exchange content 2024-06-01T10:00:00..2024-06-01T11:00:00', 429, 100);
      contoso.api.observer!('list Audit.Exchange content 2024-06-01T10:00:00..2024-06-01T11:00:00', 0, 60_000);
      t += 10_000;
      const { fams, flat } = parseBoth(await m.registry.metrics());
      const ex = { tenant: 'contoso', content_type: 'Audit.Exchange' };
      assert.equal(family(fams, 'm365_forward_records_total').type, 'COUNTER');
      assert.equal(value(fams, 'm365_forward_records_total', { ...ex, table: 'exchange' }), 20);
      assert.equal(value(fams, 'm365_forward_records_total', { ...ex, table: 'microsoftteams' }), 8);
      assert.equal(value(fams, 'm365_forward_records_total', { ...ex, table: OTHER_TABLE }), 2);
      assert.equal(value(fams, 'm365_forward_blobs_total', ex), 3);
      assert.equal(value(fams, 'm365_forward_lost_blobs_total', ex), 1);
      assert.equal(value(fams, 'm365_forward_gaps_total', ex), 2);
      assert.equal(value(fams, 'm365_forward_dead_lettered_records_total', ex), 4);
      assert.equal(value(fams, 'm365_forward_late_blobs_total', ex), 5);
      assert.equal(value(fams, 'm365_forward_time_fallbacks_total', ex), 7);
      assert.equal(family(fams, 'm365_forward_retry_queue_blobs').type, 'GAUGE');
      assert.equal(value(fams, 'm365_forward_retry_queue_blobs', ex), 6);
      assert.equal(value(fams, 'm365_forward_lag_seconds', ex), 120);
      assert.equal(value(fams, 'm365_forward_max_lateness_seconds', ex), 90);
      assert.equal(value(fams, 'm365_forward_feed_idle_seconds', ex), 10);
      assert.equal(value(fams, 'm365_forward_feed_stalled', ex), 0);
      assert.equal(value(fams, 'm365_forward_last_success_timestamp_seconds', ex), (API_NOW - 5000) / 1000);
      // The left-out tenant: its checkpoint's counters where the state has one, idle since the start.
      const gen = { tenant: 'fabrikam', content_type: 'Audit.General' };
      assert.equal(value(fams, 'm365_forward_blobs_total', gen), 11);
      assert.equal(value(fams, 'm365_forward_feed_idle_seconds', gen), 10);
      assert.equal(value(fams, 'm365_forward_feed_idle_seconds', { tenant: 'fabrikam', content_type: 'DLP.All' }), 10);
      assert.equal(family(fams, 'm365_forward_blobs_total').metrics.length, 2, 'no counter for a feed the state does not have');
      assert.equal(value(fams, 'm365_forward_tenant_up', { tenant: 'contoso' }), 1);
      assert.equal(value(fams, 'm365_forward_tenant_up', { tenant: 'fabrikam' }), 0);
      assert.equal(value(fams, 'm365_forward_throttled_total', { tenant: 'contoso' }), 3);
      assert.equal(value(fams, 'm365_forward_api_retries_total', { tenant: 'fabrikam' }), 2);
      assert.equal(value(fams, 'm365_forward_clock_skew_seconds', { tenant: 'contoso' }), 1.5);
      assert.equal(value(fams, 'm365_forward_api_requests_total', { tenant: 'contoso', operation: 'blob', code: '200' }), 1);
      assert.equal(value(fams, 'm365_forward_api_requests_total', { tenant: 'contoso', operation: 'list', code: '429' }), 1);
      assert.equal(value(fams, 'm365_forward_api_requests_total', { tenant: 'contoso', operation: 'list', code: 'no_response' }), 1);
      assert.equal(family(fams, 'm365_forward_api_request_duration_seconds').type, 'HISTOGRAM');
      const blob = { tenant: 'contoso', operation: 'blob' };
      assert.equal(value(flat, 'm365_forward_api_request_duration_seconds_count', blob), 1);
      assert.equal(value(flat, 'm365_forward_api_request_duration_seconds_sum', blob), 0.25);
      assert.equal(value(flat, 'm365_forward_api_request_duration_seconds_bucket', { le: '0.1', ...blob }), 0);
      assert.equal(value(flat, 'm365_forward_api_request_duration_seconds_bucket', { le: '0.25', ...blob }), 1);
      assert.equal(value(flat, 'm365_forward_api_request_duration_seconds_count', { tenant: 'contoso', operation: 'list' }), 2);
      assert.ok(fams.some((f) => f.name === 'process_resident_memory_bytes'), 'process metrics are there');
      assert.equal(fabrikam.api.observer === undefined, false, 'every tenant\'s client is observed');
    } finally {
      m.detach();
    }
    assert.equal(contoso.api.observer, undefined);
    assert.equal(fabrikam.api.observer, undefined);
  });

  test('past stall_after: the feed, the left-out tenant\'s feeds and the output are stalled, in /healthz and in feed_stalled', async () => {
    let t = 5_000_000;
    const { src, poller } = standIn(() => t, 31 * MIN);
    const m = createCollectorMetrics(src, { stallAfterMs: 30 * MIN, now: () => t });
    try {
      assert.deepEqual(m.health(), {
        status: 'stalled',
        stallAfterSeconds: 1800,
        reasons: [{ output: 'forward tcp://127.0.0.1:24224', noAckSeconds: 1860 }],
      });
      t += 30 * MIN + 1000;
      poller.checkpoint.s.lastError = 'list Audit.Exchange content: HTTP 500';
      const h = m.health();
      assert.equal(h.status, 'stalled');
      assert.deepEqual(h.status === 'stalled' && h.reasons, [
        { feed: 'contoso/Audit.Exchange', idleSeconds: 1801, error: 'list Audit.Exchange content: HTTP 500' },
        { feed: 'fabrikam/Audit.General', idleSeconds: 1801, tenantStarted: false, error: 'tenant fabrikam: the credentials were refused (AADSTS7000215)' },
        { feed: 'fabrikam/DLP.All', idleSeconds: 1801, tenantStarted: false, error: 'tenant fabrikam: the credentials were refused (AADSTS7000215)' },
        { output: 'forward tcp://127.0.0.1:24224', noAckSeconds: 1860 },
      ]);
      const fams = parsePrometheus(await m.registry.metrics());
      assert.equal(value(fams, 'm365_forward_feed_stalled', { tenant: 'contoso', content_type: 'Audit.Exchange' }), 1);
      assert.equal(value(fams, 'm365_forward_feed_stalled', { tenant: 'fabrikam', content_type: 'DLP.All' }), 1);
      assert.equal(value(fams, 'm365_forward_output_stalled_seconds'), 1860);
      // Progress clears it.
      poller.counters.progressAt = t;
      const again = m.health();
      assert.ok(again.status === 'stalled' && !again.reasons.some((r) => 'feed' in r && r.feed === 'contoso/Audit.Exchange'));
    } finally {
      m.detach();
    }
  });
});
