import { setMaxListeners } from 'node:events';
import type https from 'node:https';
import { createTokenProvider, type TokenProvider } from '../auth/token-provider.ts';
import type { Config, TenantConfig } from '../config/schema.ts';
import { CollectorError, describeError } from '../errors.ts';
import { ApiClient } from '../management-api/api-client.ts';
import { listSubscriptions } from '../management-api/subscriptions.ts';
import { createRouter, wireRecord } from '../sink/route.ts';
import type { Sink } from '../sink/types.ts';
import { feedKey, type StateFile, type StateStore } from '../state/state-store.ts';
import { systemClock, type Clock } from '../support/clock.ts';
import { createHttpsAgent } from '../support/http-agent.ts';
import type { Logger } from '../support/logger.ts';
import { Semaphore } from '../support/semaphore.ts';
import { childController, sleep } from '../support/sleep.ts';
import { backoffDelay } from './backoff.ts';
import { clampCursor, newFeedState } from './checkpoint.ts';
import { FeedPoller, type PollResult } from './feed-poller.ts';
import { statusRecord } from './status.ts';

export interface CollectorDeps {
  config: Config;
  sink: Sink;
  store: StateStore;
  log: Logger;
  clock?: Clock;
  /** CA to trust on the Microsoft side in addition to api.ca_file (the in-process simulator's). */
  extraCaPem?: string;
}

export interface TenantRuntime {
  tenant: TenantConfig;
  api: ApiClient;
  tokens: TokenProvider;
  /** Last measured skew: local clock minus the API's Date header, in ms. */
  skewMs?: number;
}

export interface RunSummary {
  blobs: number;
  records: number;
  parked: number;
  lost: number;
  errors: string[];
}

/**
 * Wiring and lifecycle: one ApiClient, token provider and download pool per tenant, one
 * FeedPoller per (tenant, content type), the state file, and the status records. No business
 * rules here: those are in checkpoint.ts and feed-poller.ts.
 */
export class Collector {
  readonly feeds: FeedPoller[] = [];
  readonly tenants: TenantRuntime[] = [];
  readonly state: StateFile;
  readonly clock: Clock;
  readonly #agent: https.Agent;

  constructor(readonly deps: CollectorDeps) {
    const { config, log } = deps;
    this.clock = deps.clock ?? systemClock;
    this.#agent = createHttpsAgent(config.api.caFile, deps.extraCaPem);
    this.state = deps.store.load();
    const router = createRouter(config.routing.tagTemplate, config.routing.workloadTables);
    const now = this.clock();
    for (const tenant of config.tenants) {
      const tokens = createTokenProvider(tenant, this.#agent, config.polling.requestTimeoutMs);
      const rt: TenantRuntime = { tenant, tokens, api: undefined as unknown as ApiClient };
      rt.api = new ApiClient({
        apiUrl: tenant.apiUrl,
        tenantId: tenant.tenantId,
        publisherIdentifier: tenant.publisherIdentifier,
        tokens,
        agent: this.#agent,
        timeoutMs: config.polling.requestTimeoutMs,
        maxAttempts: config.polling.maxAttempts,
        log: log.child({ tenant: tenant.name }),
        onServerDate: (server) => (rt.skewMs = this.clock() - server),
      });
      this.tenants.push(rt);
      const pool = new Semaphore(config.polling.concurrency);
      for (const contentType of tenant.contentTypes) {
        const key = feedKey(tenant.name, contentType);
        let fs = this.state.feeds[key];
        if (!fs) {
          fs = this.state.feeds[key] = newFeedState(now, config.polling.initialLookbackMs);
          log.info('new feed: starting from the initial look-back', { feed: key, from: new Date(fs.cursor).toISOString() });
        } else if (clampCursor(fs, now) === 'clamped') {
          log.warn('checkpoint is older than the API keeps content: clamped, content before it is probably lost', { feed: key, from: new Date(fs.cursor).toISOString() });
        }
        this.feeds.push(
          new FeedPoller({ config, tenant, contentType, api: rt.api, sink: deps.sink, router, pool, clock: this.clock, skewMs: () => rt.skewMs, log, state: fs, save: () => this.save() }),
        );
      }
    }
  }

  save(): Promise<void> {
    return this.deps.store.save(this.state);
  }

  /**
   * Gets a token per tenant: wrong credentials fail here, before anything is listed or sent.
   * Transient failures (network, Entra ID busy) are retried: `attempts` times, or for ever.
   */
  async authenticate(signal: AbortSignal, attempts = this.deps.config.polling.maxAttempts): Promise<void> {
    for (const t of this.tenants) {
      for (let attempt = 0; ; attempt++) {
        try {
          await t.tokens.getToken();
          // One cheap call to read the API's Date header before any window is planned (clock skew).
          await listSubscriptions(t.api, signal).catch(() => {});
          break;
        } catch (err) {
          if (signal.aborted) throw signal.reason;
          if ((err instanceof CollectorError && err.fatal) || attempt + 1 >= attempts) throw err;
          const delay = backoffDelay(attempt, { baseMs: 2000, maxMs: 60_000 });
          this.deps.log.warn('cannot get a token yet; retrying', { tenant: t.tenant.name, delayMs: delay, error: describeError(err) });
          await sleep(delay, signal);
        }
      }
    }
  }

  /**
   * Collects everything listed up to now (the moment this call starts), waits until it is acked
   * and checkpointed, and returns what happened. Feeds run side by side.
   */
  async runOnce(signal: AbortSignal): Promise<RunSummary> {
    setMaxListeners(0, signal); // every in-flight request and wait listens to the one stop signal
    await this.authenticate(signal);
    const end = this.clock();
    const results = await Promise.all(this.feeds.map((f) => this.#pollFeed(f, end, signal)));
    await this.emitStatus(signal);
    return summarize(results);
  }

  /** Polls for ever (until `signal` aborts), status records at their interval. */
  async runForever(outer: AbortSignal): Promise<void> {
    // Stops on the caller's signal, or on an error that makes going on pointless (the state
    // file cannot be written: records would be delivered without a checkpoint).
    const { controller: stop, done } = childController(outer);
    setMaxListeners(0, stop.signal);
    const signal = stop.signal;
    try {
      // A daemon outlives network hiccups at boot: keep trying for a token unless it is refused.
      await this.authenticate(signal, Infinity);
      const statusLoop = (async () => {
        while (!signal.aborted) {
          await sleep(this.deps.config.status.intervalMs, signal).catch(() => {});
          if (!signal.aborted) await this.emitStatus(signal).catch((e) => this.deps.log.warn('status record not sent', { error: describeError(e) }));
        }
      })();
      await Promise.all(
        this.feeds.map(async (f) => {
          while (!signal.aborted) {
            const started = this.clock();
            const r = await this.#pollFeed(f, started, signal).catch(() => undefined);
            if (r?.error?.code === 'STATE_IO') stop.abort(r.error);
            const wait = Math.max(0, this.deps.config.polling.intervalMs - (this.clock() - started));
            await sleep(wait, signal).catch(() => {});
          }
        }),
      );
      await statusLoop;
      if (!outer.aborted) throw signal.reason;
    } finally {
      done();
    }
  }

  async #pollFeed(f: FeedPoller, end: number, signal: AbortSignal): Promise<PollResult> {
    try {
      const r = await f.poll(end, signal);
      if (r.blobs || r.parked || r.lost || r.error) {
        f.log.info('poll done', { blobs: r.blobs, records: r.records, parked: r.parked, lost: r.lost, cursor: new Date(f.state.cursor).toISOString() });
      }
      return r;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const e = err instanceof CollectorError ? err : new CollectorError('API_ERROR', describeError(err), { cause: err });
      f.state.lastError = describeError(e);
      f.log.error('poll failed', { error: describeError(e) });
      return { windows: 0, blobs: 0, records: 0, parked: 0, lost: 0, error: e };
    }
  }

  /** One status record per feed on the status tag (what an inactivity alert in the SIEM watches). */
  async emitStatus(signal: AbortSignal): Promise<void> {
    const now = this.clock();
    const { tag } = this.deps.config.status;
    const recs = this.feeds.map((f) => ({
      tag,
      timeMs: now,
      record: wireRecord(tag, statusRecord(f, now, this.tenants.find((t) => t.tenant === f.deps.tenant)?.skewMs), this.deps.config.output.recordFormat),
    }));
    await this.deps.sink.send(recs, signal);
  }

  close(): void {
    this.#agent.destroy();
  }
}

function summarize(results: PollResult[]): RunSummary {
  const s: RunSummary = { blobs: 0, records: 0, parked: 0, lost: 0, errors: [] };
  for (const r of results) {
    s.blobs += r.blobs;
    s.records += r.records;
    s.parked += r.parked;
    s.lost += r.lost;
    if (r.error) s.errors.push(describeError(r.error));
  }
  return s;
}
