import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config/schema.ts';
import type { ContentType } from '../management-api/content-types.ts';
import type { FeedCheckpoint } from '../polling/checkpoint.ts';
import { OTHER_TAGS, type FeedPoller } from '../polling/feed-poller.ts';
import type { TenantRuntime } from '../polling/tenant-runtime.ts';
import { ForwardSink } from '../sink/forward-sink.ts';
import type { Sink } from '../sink/types.ts';
import { feedKey } from '../state/state-store.ts';
import { decideHealth, isStalled, type Health } from './health.ts';
import { apiCode, apiOperation, tableOfTag } from './labels.ts';

/**
 * What the metrics read: a Collector (src/polling/collector.ts) has all of it. Read at scrape
 * time, so the record path keeps no metric of its own beyond FeedPoller.recordsByTag.
 */
export interface MetricsSource {
  readonly feeds: readonly FeedPoller[];
  readonly tenants: readonly TenantRuntime[];
  /** Tenants left out (credentials refused, API unreachable), with why. */
  readonly failedTenants: ReadonlyMap<TenantRuntime, { message: string }>;
  readonly deps: { readonly config: Config; readonly sink: Sink; readonly store: { readonly feeds: ReadonlyMap<string, FeedCheckpoint> } };
}

/** One feed (tenant × content type of the config) as a scrape sees it, polled or not. */
export interface FeedView {
  tenant: string;
  contentType: ContentType;
  /** `tenant/contentType`. */
  key: string;
  rt: TenantRuntime;
  /** Undefined while the tenant is not started: its feeds are not polled. */
  poller?: FeedPoller;
  /** The feed's checkpoint (from the state file, for a tenant not started), when there is one. */
  checkpoint?: FeedCheckpoint;
  /** Monotonic ms without progress: since the last complete poll, or since the metrics started. */
  idleMs: number;
  tenantStarted: boolean;
  error?: string;
}

/**
 * Every feed the config has, in config order. A feed of a tenant that is not started (left out,
 * or still connecting) has made no progress since `startedAt`, with the tenant's error if any.
 */
export function feedViews(src: MetricsSource, now: number, startedAt: number): FeedView[] {
  const pollers = new Map<string, FeedPoller>();
  for (const f of src.feeds) pollers.set(feedKey(f.deps.tenant.name, f.deps.contentType), f);
  const views: FeedView[] = [];
  for (const rt of src.tenants) {
    const failure = src.failedTenants.get(rt);
    for (const contentType of rt.tenant.contentTypes) {
      const key = feedKey(rt.tenant.name, contentType);
      const poller = pollers.get(key);
      const base = { tenant: rt.tenant.name, contentType, key, rt };
      if (poller) {
        views.push({ ...base, poller, checkpoint: poller.checkpoint, idleMs: now - poller.counters.progressAt, tenantStarted: true, error: poller.checkpoint.s.lastError });
      } else {
        views.push({ ...base, checkpoint: src.deps.store.feeds.get(key), idleMs: now - startedAt, tenantStarted: false, error: failure?.message });
      }
    }
  }
  return views;
}

export interface CollectorMetrics {
  readonly registry: Registry;
  /** The /healthz decision now. */
  health(): Health;
  /** Takes the observers off the API clients and the output (the collector runs on without metrics). */
  detach(): void;
}

/** Histogram buckets (s) of API requests: the API answers in 100-800 ms; blob downloads and throttled retries take longer. */
const API_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Histogram buckets (s) of Forward acks: milliseconds on loopback, up to ack_timeout (30 s) and its growth when late. */
const ACK_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120];

/**
 * A registry of the collector's metrics (README "Metrics and health"). Feed and tenant values are
 * read when scraped (collect callbacks); API requests and Forward acks are counted by observers
 * set on each tenant's ApiClient and on the ForwardSink, taken off again by detach(). `now` is the
 * monotonic clock (FeedPoller.counters.progressAt's), injectable for tests.
 */
export function createCollectorMetrics(src: MetricsSource, opts: { stallAfterMs: number; now?: () => number }): CollectorMetrics {
  const now = opts.now ?? (() => performance.now());
  const startedAt = now();
  const registry = new Registry();
  const registers = [registry];
  const views = () => feedViews(src, now(), startedAt);
  const { sink, config } = src.deps;
  const forward = sink instanceof ForwardSink ? sink : undefined;

  // Process metrics (CPU, resident memory, heap, event loop lag), under their standard names.
  collectDefaultMetrics({ register: registry });

  const feedLabels = ['tenant', 'content_type'] as const;
  const labelsOf = (v: FeedView) => ({ tenant: v.tenant, content_type: v.contentType });
  /** A counter per feed read from the feed's checkpoint (kept in the state: it continues across restarts). */
  const checkpointCounter = (name: string, help: string, value: (s: FeedCheckpoint['s']) => number) =>
    new Counter({
      name,
      help,
      labelNames: feedLabels,
      registers,
      collect() {
        this.reset();
        for (const v of views()) if (v.checkpoint) this.inc(labelsOf(v), value(v.checkpoint.s));
      },
    });
  const feedGauge = (name: string, help: string, value: (v: FeedView) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: feedLabels,
      registers,
      collect() {
        this.reset();
        for (const v of views()) {
          const x = value(v);
          if (x !== undefined) this.set(labelsOf(v), x);
        }
      },
    });

  const tableOf = tableOfTag(config.routing.tagTemplate, OTHER_TAGS);
  new Counter({
    name: 'm365_forward_records_total',
    help: 'Audit records acknowledged by the output, by feed and Devo table, since the process started',
    labelNames: [...feedLabels, 'table'] as const,
    registers,
    collect() {
      this.reset();
      for (const v of views()) {
        for (const [tag, n] of v.poller?.recordsByTag ?? []) this.inc({ ...labelsOf(v), table: tableOf(tag) }, n);
      }
    },
  });
  checkpointCounter('m365_forward_blobs_total', 'Content blobs delivered (every record acknowledged), since the feed started (kept in the state)', (s) => s.blobsDelivered);
  checkpointCounter('m365_forward_lost_blobs_total', 'Content blobs that could not be delivered at all (expired), since the feed started', (s) => s.lost);
  checkpointCounter('m365_forward_gaps_total', 'Losses the API forced (expired blobs, restarted subscriptions, retention), each logged with its time range', (s) => s.gaps);
  checkpointCounter('m365_forward_dead_lettered_records_total', 'Records set aside in the dead-letter file (see `deadletter list`), since the feed started', (s) => s.deadLettered);
  checkpointCounter('m365_forward_late_blobs_total', 'Blobs the API listed after their window was done, delivered late, since the feed started', (s) => s.lateBlobs);
  new Counter({
    name: 'm365_forward_time_fallbacks_total',
    help: 'Records timed by their blob because their CreationTime could not be read, since the process started',
    labelNames: feedLabels,
    registers,
    collect() {
      this.reset();
      for (const v of views()) if (v.poller) this.inc(labelsOf(v), v.poller.counters.timeFallbacks);
    },
  });
  feedGauge('m365_forward_retry_queue_blobs', 'Blobs waiting in the feed\'s retry queue', (v) => v.checkpoint?.retry.size);
  feedGauge('m365_forward_lag_seconds', 'API time minus the feed\'s cursor: how far behind the feed is', (v) => (v.checkpoint ? Math.max(0, (v.rt.clock.now() - v.checkpoint.cursor) / 1000) : undefined));
  feedGauge('m365_forward_max_lateness_seconds', 'Longest delay seen between a late blob\'s creation and its listing', (v) => v.checkpoint?.s.maxLatenessSeconds);
  feedGauge('m365_forward_feed_idle_seconds', 'Time since the feed last completed a poll (for a tenant not started: since the process started)', (v) => v.idleMs / 1000);
  feedGauge('m365_forward_feed_stalled', '1 when the feed made no progress for metrics.stall_after (what /healthz reports), else 0', (v) => (isStalled(v.idleMs, opts.stallAfterMs) ? 1 : 0));
  feedGauge('m365_forward_last_success_timestamp_seconds', 'API time (Unix seconds) the feed last completed a poll', (v) => (v.poller?.counters.lastSuccessAt === undefined ? undefined : v.poller.counters.lastSuccessAt / 1000));

  new Gauge({
    name: 'm365_forward_tenant_up',
    help: '1 when the tenant is started and its feeds are polled; 0 while it is left out (see the log) or starting',
    labelNames: ['tenant'] as const,
    registers,
    collect() {
      this.reset();
      const polled = new Set(src.feeds.map((f) => f.deps.tenant.name));
      for (const rt of src.tenants) this.set({ tenant: rt.tenant.name }, polled.has(rt.tenant.name) && !src.failedTenants.has(rt) ? 1 : 0);
    },
  });
  const tenantCounter = (name: string, help: string, value: (rt: TenantRuntime) => number) =>
    new Counter({
      name,
      help,
      labelNames: ['tenant'] as const,
      registers,
      collect() {
        this.reset();
        for (const rt of src.tenants) this.inc({ tenant: rt.tenant.name }, value(rt));
      },
    });
  tenantCounter('m365_forward_throttled_total', 'Throttled API answers (429, 403 AF429) the tenant got, retried or not, since the process started', (rt) => rt.api.stats.throttled);
  tenantCounter('m365_forward_api_retries_total', 'API calls retried after a transient failure, since the process started', (rt) => rt.api.stats.retried);
  new Gauge({
    name: 'm365_forward_clock_skew_seconds',
    help: 'Local clock minus the API\'s (from its Date header); decisions use the API\'s time',
    labelNames: ['tenant'] as const,
    registers,
    collect() {
      this.reset();
      for (const rt of src.tenants) if (rt.clock.skewMs !== undefined) this.set({ tenant: rt.tenant.name }, rt.clock.skewMs / 1000);
    },
  });

  const requests = new Counter({
    name: 'm365_forward_api_requests_total',
    help: 'HTTP requests to the Management Activity API by operation (list, blob, start, stop, subscriptions, other) and HTTP status (no_response: network failure or timeout)',
    labelNames: ['tenant', 'operation', 'code'] as const,
    registers,
  });
  const requestSeconds = new Histogram({
    name: 'm365_forward_api_request_duration_seconds',
    help: 'Time of one API request, from sending it to its whole body read',
    labelNames: ['tenant', 'operation'] as const,
    buckets: API_BUCKETS,
    registers,
  });
  for (const rt of src.tenants) {
    const tenant = rt.tenant.name;
    rt.api.observer = (what, status, ms) => {
      const operation = apiOperation(what);
      requests.inc({ tenant, operation, code: apiCode(status) });
      requestSeconds.observe({ tenant, operation }, ms / 1000);
    };
  }

  if (forward) {
    const ackSeconds = new Histogram({
      name: 'm365_forward_output_ack_duration_seconds',
      help: 'Time from a Forward frame\'s first write to its ack',
      buckets: ACK_BUCKETS,
      registers,
    });
    forward.ackObserver = (ms) => ackSeconds.observe(ms / 1000);
    const outputCounter = (name: string, help: string, key: keyof ForwardSink['stats']) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(forward.stats[key]);
        },
      });
    outputCounter('m365_forward_output_frames_sent_total', 'Forward frames written, re-sends included', 'framesSent');
    outputCounter('m365_forward_output_frames_acked_total', 'Forward frames acknowledged', 'framesAcked');
    outputCounter('m365_forward_output_frames_resent_total', 'Forward frames re-sent alone after their ack timed out', 'framesResent');
    outputCounter('m365_forward_output_records_acked_total', 'Records acknowledged by the output (status records included)', 'recordsAcked');
    outputCounter('m365_forward_output_late_acks_total', 'Acks that came after their frame\'s ack timeout', 'lateAcks');
    outputCounter('m365_forward_output_reconnects_total', 'Reconnections to the Forward receiver', 'reconnects');
    new Gauge({
      name: 'm365_forward_output_frames_in_flight_limit',
      help: 'Frames that may await their ack at once now (halved on ack timeouts, up to max_frames_in_flight)',
      registers,
      collect() {
        this.set(forward.flow.window);
      },
    });
    new Gauge({
      name: 'm365_forward_output_ack_timeout_seconds',
      help: 'The ack timeout now (grows from ack_timeout when acks come late)',
      registers,
      collect() {
        this.set(forward.flow.ackTimeoutMs / 1000);
      },
    });
  }
  new Gauge({
    name: 'm365_forward_output_stalled_seconds',
    help: 'Time records have waited at the output with no ack (0 when nothing waits)',
    registers,
    collect() {
      this.set(sink.health().stalledMs / 1000);
    },
  });

  return {
    registry,
    health() {
      const h = sink.health();
      return decideHealth(
        views().map((v) => ({ feed: v.key, idleMs: v.idleMs, tenantStarted: v.tenantStarted, error: v.error })),
        { output: sink.description, stalledMs: h.stalledMs, lastError: h.lastError },
        opts.stallAfterMs,
      );
    },
    detach() {
      for (const rt of src.tenants) rt.api.observer = undefined;
      if (forward) forward.ackObserver = undefined;
    },
  };
}
