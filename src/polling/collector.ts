import { setMaxListeners } from 'node:events';
import type { Config } from '../config/schema.ts';
import { CollectorError, describeError } from '../errors.ts';
import { encodeBlob, type WireFormat } from '../record/encode.ts';
import { wireFormat } from '../sink/create-sink.ts';
import { createRouter, type Router } from '../sink/route.ts';
import type { Sink } from '../sink/types.ts';
import { DeadLetterFile, deadLetterPath } from '../state/dead-letter.ts';
import { feedKey, type StateStore } from '../state/state-store.ts';
import type { Clock } from '../support/clock.ts';
import type { Logger } from '../support/logger.ts';
import { Semaphore } from '../support/semaphore.ts';
import { childController, sleep } from '../support/sleep.ts';
import { BACKOFF, backoffDelay } from './backoff.ts';
import { BLOBS_PER_DOWNLOAD_SLOT, FeedPoller, type PollResult } from './feed-poller.ts';
import type { FeedCheckpoint } from './checkpoint.ts';
import { failedTenantStatus, statusRecord } from './status.ts';
import { connectTenant, createTenantRuntime, type TenantRuntime } from './tenant-runtime.ts';

/**
 * The run's signal has one listener per feed (its window, or its sleep between polls) plus the
 * status loop and its send: a known bound, so Node still warns about a real leak beyond it.
 */
function feedListenerBound(signal: AbortSignal, config: Config): void {
  const feeds = config.tenants.reduce((n, t) => n + t.contentTypes.length, 0);
  setMaxListeners(Math.max(10, feeds + 8), signal);
}

export interface CollectorDeps {
  config: Config;
  sink: Sink;
  store: StateStore;
  log: Logger;
  /** The local clock (tests move it); each tenant's API clock corrects it by the measured skew. */
  clock?: Clock;
  /** The clock API time is carried forward on between responses (default: `clock` when given, else performance.now). */
  monotonic?: Clock;
  /** CA to trust on the Microsoft side in addition to api.ca_file (the in-process simulator's). */
  extraCaPem?: string;
}

export interface RunSummary {
  blobs: number;
  records: number;
  deadLettered: number;
  parked: number;
  lost: number;
  late: number;
  gaps: number;
  /** Blobs waiting in retry queues after the run (parked now or earlier). */
  waiting: number;
  errors: string[];
  /** Tenants left out of the run (credentials refused, API unreachable), with why. */
  tenantFailures: TenantFailure[];
  /** Set when the checkpoint could not be saved: what was acked will be sent again. */
  stateError?: string;
}

/** A tenant that could not be started: its feeds are not polled; the other tenants go on. */
export interface TenantFailure {
  tenant: string;
  /** The credentials were refused (or consent is missing): a person must act (exit 3). */
  auth: boolean;
  error: string;
}

/** A feed in the state file that the config no longer has: dropped from the state, and reported. */
export interface RemovedFeed {
  key: string;
  /** Blobs its retry queue still held (never fetched): their ids and contentCreated range. */
  retryQueue: number;
  retryContentIds: string[];
  retryFrom?: string;
  retryTo?: string;
}

/**
 * Wiring and lifecycle: one runtime (HTTPS pool, API clock, tokens, API client) and download pool
 * per tenant, one FeedPoller per (tenant, content type), the state store, and the status records.
 * No business rules here: those are in checkpoint.ts, outcome.ts and feed-poller.ts.
 */
export class Collector {
  readonly feeds: FeedPoller[] = [];
  readonly tenants: TenantRuntime[];
  readonly removedFeeds: RemovedFeed[] = [];
  readonly deadLetters: DeadLetterFile;
  /** Tenants not started (yet): a service keeps trying them; a one-shot run reports them. */
  readonly failedTenants = new Map<TenantRuntime, CollectorError>();
  #reconciled?: Promise<void>;
  /** The feeds of each tenant that started. */
  readonly #tenantFeeds = new Map<TenantRuntime, FeedPoller[]>();
  /** The state as loaded, and what feeds are built with (a tenant may join later). */
  #build?: { existing: ReadonlyMap<string, FeedCheckpoint>; loaded: Set<string>; router: Router; format: WireFormat };
  /** recordsDelivered/blobsDelivered of each feed when this process started it (progress() subtracts them). */
  readonly #baseline = new Map<FeedPoller, { records: number; blobs: number }>();

  constructor(readonly deps: CollectorDeps) {
    const { config, log } = deps;
    this.tenants = config.tenants.map((t) => createTenantRuntime(t, config, { log, clock: deps.clock, monotonic: deps.monotonic, extraCaPem: deps.extraCaPem }));
    this.deadLetters = new DeadLetterFile(deadLetterPath(config.state.path));
  }

  /**
   * Reads the state (no network, nothing written): the checkpoints the tenants' feeds continue.
   * Feeds the config no longer has are dropped from the state (and reported) once the first
   * tenant has started, so a run whose every tenant is refused leaves the state untouched.
   */
  #prepare(): void {
    if (this.#build) return;
    const { config, store } = this.deps;
    const existing = store.load();
    this.#build = {
      existing,
      loaded: new Set(existing.keys()), // the store's map grows as feeds are created
      router: createRouter(config.routing.tagTemplate, config.routing.workloadTables),
      format: wireFormat(config),
    };
  }

  /** Drops the feeds the config no longer has, reporting each, and compacts the state (once). */
  #reconcile(): Promise<void> {
    this.#reconciled ??= (async () => {
      const { config, log, store } = this.deps;
      const { existing, loaded } = this.#build!;
      // Feeds of tenants in the config (started or not) are wanted; the others were removed.
      const wanted = new Set(this.tenants.flatMap((rt) => rt.tenant.contentTypes.map((ct) => feedKey(rt.tenant.name, ct))));
      for (const [key, cp] of [...existing]) {
        if (wanted.has(key) || !loaded.has(key)) continue;
        const parked = [...cp.retry.values()].sort((a, b) => (a.contentCreated < b.contentCreated ? -1 : 1));
        const removed: RemovedFeed = {
          key,
          retryQueue: parked.length,
          retryContentIds: parked.map((e) => e.contentId),
          ...(parked.length ? { retryFrom: parked[0]!.contentCreated, retryTo: parked.at(-1)!.contentCreated } : {}),
        };
        this.removedFeeds.push(removed);
        // A tenant renamed in the config (same tenant_id) starts a new feed: its checkpoint is not
        // carried over, so the new one re-sends or skips what the look-back says. Say so.
        const ct = key.slice(key.lastIndexOf('/') + 1);
        const renamed = config.tenants.find((t) => t.tenantId.toLowerCase() === cp.s.tenantId.toLowerCase() && t.contentTypes.includes(ct as never) && !loaded.has(feedKey(t.name, ct)));
        if (renamed) {
          log.warn('a tenant seems renamed: its new feed starts from polling.initial_lookback and does not continue the old checkpoint; give it its old name back to continue it', { feed: feedKey(renamed.name, ct), oldFeed: key });
        }
        // The state follows the config: the feed is dropped (the compaction below writes the state
        // without it). What its retry queue held is named, as those blobs will not be fetched by it.
        log.warn('the state file held a feed the config no longer has: dropped from the state', {
          feed: key,
          cursor: new Date(cp.cursor).toISOString(),
          retryQueue: parked.length,
          ...(parked.length
            ? { retryFrom: removed.retryFrom, retryTo: removed.retryTo, retryContentIds: removed.retryContentIds.slice(0, 20), note: 'these blobs were never delivered; put the feed back in the config to fetch them while the API keeps them' }
            : {}),
        });
        store.dropFeed(key);
      }
      // Fold the journal into a fresh snapshot now: a clean start, and a short journal to replay next time.
      await store.compact();
    })();
    return this.#reconciled;
  }

  /**
   * Starts one tenant: its first token (wrong credentials fail here, before anything is listed or
   * sent) and a listing call that reads the API's clock, with `attempts` tries; then its feeds,
   * in API time. Each tenant starts on its own: one whose secret is refused, whose API cannot be
   * reached or that is throttled never holds up the others. A tenant that fails is left out
   * (`failedTenants`) and undefined returned.
   */
  async #startTenant(rt: TenantRuntime, signal: AbortSignal, attempts: number): Promise<FeedPoller[] | undefined> {
    const started = this.#tenantFeeds.get(rt);
    if (started) return started; // a second runOnce of the same collector goes on with the same feeds
    try {
      await connectTenant(rt, signal, attempts, this.deps.log);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const e = asCollectorError(err);
      this.failedTenants.set(rt, e);
      this.deps.log.error('tenant left out: its feeds are not polled until it can start; the other tenants go on', { tenant: rt.tenant.name, error: e.message });
      return undefined;
    }
    this.failedTenants.delete(rt);
    await this.#reconcile();
    const feeds = this.#buildFeeds(rt);
    this.#tenantFeeds.set(rt, feeds);
    return feeds;
  }

  /** When no tenant could start: the error to stop with (a credential refusal first), else undefined. */
  #nothingStarted(opts: { onlyIfFatal: boolean }): CollectorError | undefined {
    if (this.failedTenants.size < this.tenants.length) return undefined;
    const errors = [...this.failedTenants.values()];
    if (opts.onlyIfFatal && !errors.every((e) => e.fatal)) return undefined;
    return errors.find((e) => e.code === 'AUTH_FAILED') ?? errors[0];
  }

  /** The feeds of one started tenant, from its checkpoints in the state (or new ones from the look-back). */
  #buildFeeds(rt: TenantRuntime): FeedPoller[] {
    const { config, log, store } = this.deps;
    const { existing, router, format } = this.#build!;
    const pool = new Semaphore(config.polling.concurrency);
    const blobs = new Semaphore(config.polling.concurrency * BLOBS_PER_DOWNLOAD_SLOT);
    const built: FeedPoller[] = [];
    for (const contentType of rt.tenant.contentTypes) {
      const key = feedKey(rt.tenant.name, contentType);
      let cp = existing.get(key);
      if (cp && cp.s.tenantId && cp.s.tenantId.toLowerCase() !== rt.tenant.tenantId.toLowerCase()) {
        throw new CollectorError(
          'CONFIG_INVALID',
          `tenant "${rt.tenant.name}" has tenant_id ${rt.tenant.tenantId}, but the state file ${store.file} holds its checkpoint for tenant ${cp.s.tenantId}: give the new tenant a new name (or a new state.path); never mix two tenants under one name`,
          { fatal: true },
        );
      }
      if (!cp) {
        cp = store.createFeed(key, rt.tenant.tenantId, rt.clock.now(), config.polling.initialLookbackMs);
        log.info('new feed: starting from the initial look-back', { feed: key, from: new Date(cp.s.origin).toISOString() });
      } else if (!cp.s.tenantId) {
        cp.s.tenantId = rt.tenant.tenantId; // a version-1 state did not record it
      }
      const f = new FeedPoller({ config, tenant: rt.tenant, contentType, api: rt.api, clock: rt.clock, sink: this.deps.sink, format, router, pool, blobs, checkpoint: cp, deadLetters: this.deadLetters, log });
      this.#baseline.set(f, { records: cp.s.recordsDelivered, blobs: cp.s.blobsDelivered });
      built.push(f);
    }
    this.feeds.push(...built);
    return built;
  }

  /**
   * A service's second chance for a tenant left out at start: tried again on its own schedule
   * (BACKOFF.tenantRetry) until it starts, then its feeds join the running collector.
   */
  async #retryTenant(rt: TenantRuntime, signal: AbortSignal): Promise<FeedPoller[] | undefined> {
    for (let attempt = 0; !signal.aborted; attempt++) {
      await sleep(backoffDelay(attempt, BACKOFF.tenantRetry), signal).catch(() => {});
      if (signal.aborted) return undefined;
      const feeds = await this.#startTenant(rt, signal, 1).catch((err) => {
        if (signal.aborted) return undefined;
        throw err;
      });
      if (feeds) {
        this.deps.log.info('tenant started: its feeds join', { tenant: rt.tenant.name });
        return feeds;
      }
    }
    return undefined;
  }


  /** Blobs and records acked since this process started (whether or not their checkpoint reached the disk). */
  progress(): { blobs: number; records: number } {
    let blobs = 0;
    let records = 0;
    for (const [f, b] of this.#baseline) {
      blobs += f.checkpoint.s.blobsDelivered - b.blobs;
      records += f.checkpoint.s.recordsDelivered - b.records;
    }
    return { blobs, records };
  }

  /** One feed's blobs and records acked since this process started it (the terminal progress display reads it). */
  feedProgress(f: FeedPoller): { blobs: number; records: number } {
    const b = this.#baseline.get(f) ?? { blobs: f.checkpoint.s.blobsDelivered, records: f.checkpoint.s.recordsDelivered };
    return { blobs: f.checkpoint.s.blobsDelivered - b.blobs, records: f.checkpoint.s.recordsDelivered - b.records };
  }

  /**
   * Collects everything listed up to now (the moment this call starts, in each tenant's API
   * time), waits until it is acked, and returns what happened. Feeds run side by side.
   */
  async runOnce(outer: AbortSignal): Promise<RunSummary> {
    const { controller, done } = childController(outer);
    feedListenerBound(controller.signal, this.deps.config);
    const stopOnStateError = (err: CollectorError) => controller.abort(err);
    this.deps.store.onError = stopOnStateError;
    try {
      this.#prepare();
      // Each tenant starts and collects on its own: a slow, throttled or refused tenant holds up
      // no other. Every feed settles (an abort ends them all quickly) before this returns or
      // throws: nothing may still be changing the state once the caller closes it.
      const settled = await Promise.allSettled(
        this.tenants.map(async (rt) => {
          const feeds = await this.#startTenant(rt, controller.signal, this.deps.config.polling.maxAttempts);
          if (!feeds) return [];
          const end = rt.clock.now(); // what is listed up to the moment the tenant started
          const polls = await Promise.allSettled(
            feeds.map(async (f) => {
              const r = await f.poll(controller.signal, end);
              if (r.stopRun) controller.abort(r.error);
              return [f, r] as const;
            }),
          );
          return polls.map((x) => {
            if (x.status === 'rejected') throw x.reason;
            return x.value;
          });
        }),
      );
      const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
      if (failed) throw failed.reason;
      const none = this.#nothingStarted({ onlyIfFatal: false });
      if (none) throw none;
      const results = settled.flatMap((x) => (x as PromiseFulfilledResult<(readonly [FeedPoller, PollResult])[]>).value);
      await this.emitStatus(controller.signal);
      await this.deps.store.flush().catch(() => {});
      return this.#summarize(results);
    } catch (err) {
      if (controller.signal.aborted && !outer.aborted && controller.signal.reason instanceof CollectorError) throw controller.signal.reason;
      throw err;
    } finally {
      done();
    }
  }

  /** Polls for ever (until `signal` aborts), status records at their interval. */
  async runForever(outer: AbortSignal): Promise<void> {
    // Stops on the caller's signal, or on an error that makes going on pointless (the state
    // cannot be written: records would be delivered without a checkpoint).
    const { controller: stop, done } = childController(outer);
    feedListenerBound(stop.signal, this.deps.config);
    this.deps.store.onError = (err) => stop.abort(err);
    const signal = stop.signal;
    const { config } = this.deps;
    try {
      this.#prepare();
      const statusLoop = (async () => {
        while (!signal.aborted) {
          await sleep(config.status.intervalMs, signal).catch(() => {});
          if (!signal.aborted) await this.emitStatus(signal).catch((e) => this.deps.log.warn('status record not sent', { error: describeError(e) }));
        }
      })();
      const pollLoop = async (f: FeedPoller): Promise<void> => {
        let failures = 0;
        while (!signal.aborted) {
          const started = performance.now();
          const r = await f.poll(signal).catch(() => undefined);
          if (r?.stopRun) stop.abort(r.error);
          if (r?.blobs || r?.parked || r?.lost || r?.deadLettered) {
            f.log.info('poll done', { blobs: r.blobs, records: r.records, deadLettered: r.deadLettered, parked: r.parked, lost: r.lost, late: r.late, cursor: new Date(f.checkpoint.cursor).toISOString() });
          }
          failures = r?.error ? failures + 1 : 0;
          const interval = failures ? Math.max(config.polling.intervalMs, backoffDelay(failures - 1, BACKOFF.feedError)) : config.polling.intervalMs;
          await sleep(Math.max(0, interval - (performance.now() - started)), signal).catch(() => {});
        }
      };
      // Each tenant starts on its own and its feeds poll as soon as it is up. A daemon outlives
      // network hiccups at boot: a tenant that fails its polling.max_attempts tries is tried again
      // in the background (BACKOFF.tenantRetry) while the others run. Only when every tenant was
      // refused for good does it stop (exit 3): that needs a person.
      const loops: Promise<void>[] = [];
      const starts = this.tenants.map(async (rt) => {
        const feeds = await this.#startTenant(rt, signal, config.polling.maxAttempts);
        if (feeds) loops.push(...feeds.map(pollLoop));
      });
      await Promise.all(starts);
      const none = this.#nothingStarted({ onlyIfFatal: true });
      if (none) stop.abort(none);
      for (const rt of [...this.failedTenants.keys()]) {
        loops.push(
          this.#retryTenant(rt, signal).then((feeds) => {
            if (feeds) loops.push(...feeds.map(pollLoop));
          }),
        );
      }
      // Loops started later (a tenant that joined) are awaited too.
      for (let n = 0; n < loops.length; ) {
        n = loops.length;
        await Promise.all(loops);
      }
      await statusLoop;
      if (!outer.aborted) throw signal.reason;
    } finally {
      done();
    }
  }

  /** One status record per feed on the status tag (what an inactivity alert in the SIEM watches). */
  async emitStatus(signal: AbortSignal): Promise<void> {
    const { config, sink } = this.deps;
    const records = this.feeds.map((f) => JSON.stringify(statusRecord(f, { stallAfterMs: config.status.stallAfterMs })));
    // A tenant left out still reports each of its feeds, with why: an alert on lastError or on
    // the feed's missing progress catches it.
    for (const [rt, err] of this.failedTenants) {
      for (const ct of rt.tenant.contentTypes) records.push(JSON.stringify(failedTenantStatus(rt, ct, this.deps.store.feeds.get(feedKey(rt.tenant.name, ct)), err.message)));
    }
    if (records.length === 0) return;
    const body = Buffer.from(`[${records.join(',')}]`);
    const now = Date.now();
    const enc = encodeBlob(body, {
      format: wireFormat(config),
      router: createRouter(config.routing.tagTemplate, {}),
      contentType: 'Audit.General',
      fixedTag: config.status.tag,
      fallback: { sec: Math.floor(now / 1000), nsec: (now % 1000) * 1_000_000 },
    });
    await sink.send(enc.entries, signal);
  }

  #summarize(results: (readonly [FeedPoller, PollResult])[]): RunSummary {
    const s: RunSummary = { blobs: 0, records: 0, deadLettered: 0, parked: 0, lost: 0, late: 0, gaps: 0, waiting: 0, errors: [], tenantFailures: this.#tenantFailures() };
    for (const [f, r] of results) {
      s.blobs += r.blobs;
      s.records += r.records;
      s.deadLettered += r.deadLettered;
      s.parked += r.parked;
      s.lost += r.lost;
      s.late += r.late;
      s.gaps += r.gaps.length;
      if (r.error) s.errors.push(`${feedKey(f.deps.tenant.name, f.deps.contentType)}: ${describeError(r.error)}`);
    }
    s.waiting = this.feeds.reduce((n, f) => n + f.checkpoint.retry.size, 0);
    const fail = this.deps.store.failure;
    if (fail) s.stateError = describeError(fail);
    return s;
  }

  #tenantFailures(): TenantFailure[] {
    return [...this.failedTenants].map(([rt, e]) => ({ tenant: rt.tenant.name, auth: e.code === 'AUTH_FAILED', error: e.message }));
  }

  /** Flushes the state and releases every connection pool. */
  async close(): Promise<void> {
    try {
      await this.deps.store.close();
    } finally {
      for (const t of this.tenants) t.close();
    }
  }
}

function asCollectorError(err: unknown): CollectorError {
  return err instanceof CollectorError ? err : new CollectorError('API_ERROR', describeError(err), { cause: err });
}
