import { setMaxListeners } from 'node:events';
import type { Config, TenantConfig } from '../config/schema.ts';
import { CollectorError, describeError } from '../errors.ts';
import { ApiCallError, type ApiClient } from '../management-api/api-client.ts';
import { AF_CODES } from '../management-api/af-codes.ts';
import type { ContentType } from '../management-api/content-types.ts';
import { formatListTime, parseApiTime } from '../management-api/dates.ts';
import { fetchBlob } from '../management-api/fetch-blob.ts';
import { listContent, type ContentListing } from '../management-api/list-content.ts';
import { startSubscription } from '../management-api/subscriptions.ts';
import { recordTime, wireRecord, type Router } from '../sink/route.ts';
import type { RoutedRecord, Sink } from '../sink/types.ts';
import type { Clock } from '../support/clock.ts';
import type { Logger } from '../support/logger.ts';
import type { Semaphore } from '../support/semaphore.ts';
import { childController } from '../support/sleep.ts';
import { backoffDelay } from './backoff.ts';
import {
  clampCursor,
  completeWindow,
  dueRetries,
  isDone,
  markDelivered,
  markLost,
  park,
  planWindows,
  type BlobRef,
  type FeedState,
} from './checkpoint.ts';

export interface FeedDeps {
  config: Config;
  tenant: TenantConfig;
  contentType: ContentType;
  api: ApiClient;
  sink: Sink;
  router: Router;
  pool: Semaphore;
  clock: Clock;
  /** Local clock minus the API's (from its Date header), when measured. */
  skewMs?: () => number | undefined;
  log: Logger;
  state: FeedState;
  /** Persists the whole state file (this feed's state is part of it). */
  save: () => Promise<void>;
}

/** Counters that live only in memory, for status records. */
export interface FeedCounters {
  timeFallbacks: number;
  lastPollAt?: number;
  lastSuccessAt?: number;
  subscribed: boolean;
}

export interface PollResult {
  /** Windows listed and completed in this poll. */
  windows: number;
  blobs: number;
  records: number;
  /** Blobs that failed in this poll and went to the retry queue. */
  parked: number;
  lost: number;
  /** Set when the poll could not finish (listing failed); the cursor stayed where it was. */
  error?: CollectorError;
}

/**
 * One feed: (tenant, content type). A poll: retry what is due in the retry queue, then list each
 * window from `cursor - overlap` to `end`, deliver every blob not yet done, and move the cursor
 * over a window once all its blobs are delivered (or parked). The loop only carries out the
 * decisions of checkpoint.ts.
 */
export class FeedPoller {
  readonly counters: FeedCounters = { timeFallbacks: 0, subscribed: false };
  readonly log: Logger;
  #skewWarned = false;
  constructor(readonly deps: FeedDeps) {
    this.log = deps.log.child({ tenant: deps.tenant.name, contentType: deps.contentType });
  }

  get state(): FeedState {
    return this.deps.state;
  }

  async poll(end: number, signal: AbortSignal): Promise<PollResult> {
    const d = this.deps;
    const result: PollResult = { windows: 0, blobs: 0, records: 0, parked: 0, lost: 0 };
    const now = d.clock();
    this.counters.lastPollAt = now;
    const before = this.state.cursor;
    if (clampCursor(this.state, now) === 'clamped') {
      // The checkpoint fell behind what the API keeps (a week of outage or stall): say so loudly.
      this.state.lastError = `checkpoint fell behind the API's 7-day retention: content created between ${new Date(before).toISOString()} and ${new Date(this.state.cursor).toISOString()} can no longer be listed`;
      this.log.error('content lost to retention', { from: new Date(before).toISOString(), to: new Date(this.state.cursor).toISOString() });
      await d.save();
    }
    await this.#retryDue(result, signal);
    // Plan in the API's time when the local clock is off by more than a minute: windows that end
    // "in the future" or start "8 days back" by the API's clock are refused with AF20055 (§9.3;
    // Beats adjusts its clock the same way).
    const skew = d.skewMs?.() ?? 0;
    const shift = Math.abs(skew) > 60_000 ? skew : 0;
    if (shift && !this.#skewWarned) {
      this.#skewWarned = true;
      this.log.warn('local clock differs from the API; planning windows in API time (fix NTP)', { skewSeconds: Math.round(skew / 1000) });
    }
    const windows = planWindows(this.state.cursor, end - shift, d.config.polling.overlapMs, d.clock() - shift);
    for (const w of windows) {
      let blobs: ContentListing;
      try {
        blobs = await this.#list(w.start, w.end, signal);
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        const e = err instanceof CollectorError ? err : new CollectorError('API_ERROR', describeError(err), { cause: err });
        if (e.fatal) throw e;
        this.state.lastError = describeError(e);
        this.log.warn('listing failed; the cursor stays, the next poll tries again', { window: `${formatListTime(w.start)}..${formatListTime(w.end)}`, error: describeError(e) });
        result.error = e;
        await d.save();
        return result;
      }
      const todo = this.#select(blobs.blobs, result);
      for (const problem of blobs.invalid) {
        // Cannot be fetched at all: counted as lost and reported, never skipped silently.
        this.state.lost++;
        this.state.lastError = problem;
        result.lost++;
        this.log.error('content lost: unusable listing item', { problem });
      }
      await this.#deliverAll(todo, result, signal);
      completeWindow(this.state, w.end, d.config.polling.overlapMs);
      result.windows++;
      await d.save();
    }
    if (!result.error) this.counters.lastSuccessAt = d.clock();
    // A clean poll with nothing left in the retry queue clears the last error, so an alert on
    // it does not fire for ever after a recovered outage (losses stay counted in `lost`).
    if (!result.error && !result.parked && !result.lost && this.state.retry.length === 0 && this.state.lastError !== undefined) {
      delete this.state.lastError;
      await d.save();
    }
    return result;
  }

  /**
   * Delivers a window's blobs side by side (the tenant's pool bounds how many). A fatal error in
   * one stops the others before the poll ends, so no orphaned download outlives its poll.
   */
  async #deliverAll(todo: BlobRef[], result: PollResult, signal: AbortSignal): Promise<void> {
    const { controller: stop, done } = childController(signal);
    setMaxListeners(0, stop.signal); // each queued download and request listens to it
    try {
      const settled = await Promise.allSettled(
        todo.map((b) =>
          this.#deliverOrPark(b, result, stop.signal).catch((err) => {
            stop.abort(err);
            throw err;
          }),
        ),
      );
      signal.throwIfAborted();
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw stop.signal.reason ?? failed.reason;
    } finally {
      done();
    }
  }

  /** Lists one window; starts the subscription when the API says there is none (AF20022/AF20023). */
  async #list(start: number, end: number, signal: AbortSignal): Promise<ContentListing> {
    const d = this.deps;
    try {
      return await listContent(d.api, d.contentType, start, end, signal);
    } catch (err) {
      if (!(err instanceof ApiCallError) || err.action !== 'subscribe') throw err;
      const how = await startSubscription(d.api, d.contentType, signal);
      this.counters.subscribed = true;
      this.log.info('subscription started', { result: how, after: err.apiCode });
      return await listContent(d.api, d.contentType, start, end, signal);
    }
  }

  /** Drops blobs already done (overlap re-listing, restarts) and expired ones (counted as lost). */
  #select(blobs: BlobRef[], result: PollResult): BlobRef[] {
    const now = this.deps.clock();
    const seen = new Set<string>();
    const todo: Array<{ b: BlobRef; created: number }> = [];
    for (const b of blobs) {
      if (seen.has(b.contentId) || isDone(this.state, b.contentId)) continue;
      seen.add(b.contentId);
      const exp = parseApiTime(b.contentExpiration);
      if (exp !== undefined && exp <= now) {
        this.#lose(b, `blob ${b.contentId} expired at ${b.contentExpiration} before it could be fetched`, result);
        continue;
      }
      todo.push({ b, created: parseApiTime(b.contentCreated)! });
    }
    // Oldest first, as the API lists them; ties by id so the order is deterministic (§3.4).
    todo.sort((x, y) => x.created - y.created || (x.b.contentId < y.b.contentId ? -1 : 1));
    return todo.map((x) => x.b);
  }

  #lose(b: BlobRef, reason: string, result: PollResult): void {
    markLost(this.state, b.contentId, reason);
    // Keep it in the done-set too, so the overlap re-listing does not count it twice.
    this.state.done[b.contentId] = parseApiTime(b.contentCreated) ?? this.deps.clock();
    result.lost++;
    this.log.error('content lost', { contentId: b.contentId, reason });
  }

  async #retryDue(result: PollResult, signal: AbortSignal): Promise<void> {
    const now = this.deps.clock();
    const due = [];
    for (const r of dueRetries(this.state, now)) {
      const exp = parseApiTime(r.contentExpiration);
      if (exp !== undefined && exp <= now) {
        this.#lose(r, `blob ${r.contentId} expired at ${r.contentExpiration} after ${r.attempts} failed attempt(s); last error: ${r.lastError}`, result);
      } else due.push(r);
    }
    if (result.lost) await this.deps.save();
    // Side by side, like a window's blobs: after a long outage the queue must not delay new content for hours.
    await this.#deliverAll(due, result, signal);
  }

  async #deliverOrPark(b: BlobRef, result: PollResult, signal: AbortSignal): Promise<void> {
    const d = this.deps;
    const release = await d.pool.acquire(signal);
    try {
      let count: number;
      try {
        const records = await fetchBlob(d.api, b.contentUri, b.contentId, signal);
        const createdMs = parseApiTime(b.contentCreated)!;
        const routed: RoutedRecord[] = records.map((record) => {
          const t = recordTime(record, createdMs);
          if (!t.fromRecord) this.counters.timeFallbacks++;
          const tag = d.router.tagFor(record, d.contentType);
          return { tag, timeMs: t.ms, record: wireRecord(tag, record, d.config.output.recordFormat) };
        });
        await d.sink.send(routed, signal);
        count = records.length;
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        // Tenant-wide problems (token refused, permission missing) and a sink that is gone stop
        // the poll; a problem with this one blob (bad body, odd 4xx, record too large) parks the
        // blob and the feed goes on.
        if (err instanceof CollectorError && err.fatal && (err.code === 'AUTH_FAILED' || err.code === 'SINK_ERROR' || (err.apiCode !== undefined && AF_CODES[err.apiCode]?.action === 'fatal'))) throw err;
        if (err instanceof ApiCallError && err.action === 'gone') {
          this.#lose(b, `${describeError(err)}`, result);
        } else {
          const prev = this.state.retry.find((r) => r.contentId === b.contentId)?.attempts ?? 0;
          const delay = backoffDelay(prev, { baseMs: 60_000, maxMs: 3_600_000 });
          park(this.state, b, describeError(err), d.clock(), delay);
          result.parked++;
          this.log.warn('blob parked in the retry queue', { contentId: b.contentId, retryInMs: delay, error: describeError(err) });
        }
        await d.save();
        return;
      }
      // Acked: checkpoint it. Outside the try above: a state write that fails here must stop the
      // collector (STATE_IO is fatal), not park a blob that was already delivered.
      markDelivered(this.state, b, parseApiTime(b.contentCreated)!, count);
      result.blobs++;
      result.records += count;
      await d.save();
    } finally {
      release();
    }
  }
}
