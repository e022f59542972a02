import { setMaxListeners } from 'node:events';
import type { Config, TenantConfig } from '../config/schema.ts';
import { CollectorError, describeError } from '../errors.ts';
import { ApiCallError, type ApiClient } from '../management-api/api-client.ts';
import type { ContentType } from '../management-api/content-types.ts';
import { parseApiTime, parseInstant } from '../management-api/dates.ts';
import { fetchBlobPages } from '../management-api/fetch-blob.ts';
import { listContentPages, type BlobRef, type ContentPage } from '../management-api/list-content.ts';
import { startSubscription } from '../management-api/subscriptions.ts';
import { encodeBatches, type WireFormat } from '../record/encode.ts';
import { JsonBodyError } from '../record/json-records.ts';
import type { Router } from '../sink/route.ts';
import type { EncodedEntry, Sink } from '../sink/types.ts';
import type { DeadLetterEntry, DeadLetterFile } from '../state/dead-letter.ts';
import type { ApiClock } from '../support/api-clock.ts';
import type { Logger } from '../support/logger.ts';
import type { Semaphore } from '../support/semaphore.ts';
import { childController } from '../support/sleep.ts';
import { blobExpiry, retentionFloor, type FeedCheckpoint, type Gap, type RetryEntry, type Window } from './checkpoint.ts';
import { decideFailure } from './outcome.ts';


export interface FeedDeps {
  config: Config;
  tenant: TenantConfig;
  contentType: ContentType;
  api: ApiClient;
  /** The tenant's API clock: every decision is made in the API's time. */
  clock: ApiClock;
  sink: Sink;
  format: WireFormat;
  router: Router;
  /** The tenant's download slots: a blob holds one from its download until its records are queued in the output. */
  pool: Semaphore;
  /**
   * The tenant's slots for blobs in progress (downloading, or waiting for their acks): with slow
   * acks, more blobs wait than download, and this bounds them (the output bounds their bytes).
   */
  blobs: Semaphore;
  checkpoint: FeedCheckpoint;
  deadLetters: DeadLetterFile;
  log: Logger;
}

/** Counters that live only in memory, for status records. */
export interface FeedCounters {
  timeFallbacks: number;
  /** API time of the last poll start and of the last poll that went through every window. */
  lastPollAt?: number;
  lastSuccessAt?: number;
  /** Local (monotonic) time the feed last made progress (a complete poll), for stall detection. */
  progressAt: number;
}

export interface PollResult {
  windows: number;
  blobs: number;
  records: number;
  deadLettered: number;
  /** Blobs parked in this poll (they wait in the retry queue). */
  parked: number;
  lost: number;
  late: number;
  gaps: Gap[];
  /** Set when the poll could not finish; the cursor stayed where it was. */
  error?: CollectorError;
  /** The failure means the whole run must stop (the state cannot be written). */
  stopRun?: boolean;
}

/** Thrown out of a blob task to end its poll (and with `run`, the run). */
class StopPoll extends Error {
  constructor(
    readonly error: CollectorError,
    readonly stopRun: boolean,
  ) {
    super(error.message);
  }
}

/**
 * One feed: (tenant, content type). A poll: correct the checkpoint in API time, retry what is due
 * in the retry queue, list each window from `cursor - overlap` to `end` page by page, deliver every
 * blob not yet done, and move the cursor over a window once all its blobs are finished. When due,
 * a sweep then re-lists the whole retention for blobs the API listed late. What a failure means is
 * decided by outcome.ts, what it does to the state by checkpoint.ts; this loop carries them out.
 */
export class FeedPoller {
  readonly counters: FeedCounters = { timeFallbacks: 0, progressAt: performance.now() };
  /**
   * Records acked per tag since this process started (metrics: records_total by table), added
   * once per blob when all its acks are in. At most MAX_TAGS_COUNTED tags: records of further
   * tags (a blob with endless Workload values) count under OTHER_TAGS, so memory stays bounded.
   */
  readonly recordsByTag = new Map<string, number>();
  readonly log: Logger;
  readonly #inProgress = new Set<string>();
  constructor(readonly deps: FeedDeps) {
    this.log = deps.log.child({ tenant: deps.tenant.name, contentType: deps.contentType });
  }

  get checkpoint(): FeedCheckpoint {
    return this.deps.checkpoint;
  }

  /** Polls up to `end` (API time; default now). Never throws but on abort. */
  async poll(signal: AbortSignal, end?: number): Promise<PollResult> {
    const d = this.deps;
    const cp = d.checkpoint;
    const r: PollResult = { windows: 0, blobs: 0, records: 0, deadLettered: 0, parked: 0, lost: 0, late: 0, gaps: [] };
    const apiNow = d.clock.now();
    this.counters.lastPollAt = apiNow;
    const fixed = cp.correct(apiNow);
    if (fixed.pulledBackFrom !== undefined) {
      this.log.warn('the saved checkpoint is ahead of the API\'s clock (saved while the local clock was fast): pulled back, and the whole retention is re-listed', {
        from: new Date(fixed.pulledBackFrom).toISOString(),
        to: new Date(cp.cursor).toISOString(),
      });
    }
    if (fixed.gap) this.#reportGap(fixed.gap, r);
    cp.prune(apiNow);
    const cursorAtStart = cp.cursor;
    try {
      await this.#retryDue(r, apiNow, signal);
      await this.#baseline(apiNow, r, signal);
      for (const w of cp.pollWindows(end ?? apiNow, d.config.polling.overlapMs, apiNow)) {
        const before = { blobs: r.blobs, records: r.records, t: performance.now() };
        await this.#window(w, cursorAtStart, r, signal);
        cp.completeWindow(w.end);
        r.windows++;
        // --log-level debug: one line per listing window, what it held and how long it took.
        this.log.debug('window done', { from: new Date(w.start).toISOString(), to: new Date(w.end).toISOString(), blobs: r.blobs - before.blobs, records: r.records - before.records, ms: Math.round(performance.now() - before.t), cursor: new Date(cp.cursor).toISOString(), requests: d.api.stats.requests });
      }
      // Planned now, not at the poll's start: a long poll must not send a window that has slid
      // past the 7-day limit meanwhile (AF20055).
      const sweep = cp.sweepWindows(d.clock.now(), d.config.polling.overlapMs, d.config.polling.sweepIntervalMs);
      if (sweep) {
        const before = r.late;
        for (const w of sweep) await this.#window(w, cursorAtStart, r, signal);
        cp.sweepDone(apiNow); // the poll's start: anything listed since was seen by this sweep or will be by the next
        this.log.info('sweep of the retention done', { windows: sweep.length, lateBlobs: r.late - before });
      }
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const stop = err instanceof StopPoll ? err : new StopPoll(asCollectorError(err), false);
      r.error = stop.error;
      r.stopRun = stop.stopRun;
      cp.setError(describeError(stop.error));
      this.log.error(stop.stopRun ? 'stopping: the state cannot be written' : 'poll failed; the cursor stays, the next poll tries again', { error: describeError(stop.error) });
      return r;
    }
    this.counters.lastSuccessAt = d.clock.now();
    this.counters.progressAt = performance.now();
    if (!r.parked && !r.lost && r.gaps.length === 0) cp.clearError();
    return r;
  }

  /** Lists one window page by page, delivering each page's new blobs while the next page is fetched. */
  async #window(w: Window, cursorAtStart: number, r: PollResult, outer: AbortSignal): Promise<void> {
    const d = this.deps;
    const { controller, done } = childController(outer);
    const signal = controller.signal;
    listenerBound(signal, d.config.polling.concurrency);
    const tasks = new Set<Promise<void>>();
    let failure: StopPoll | undefined;
    const fail = (e: unknown) => {
      if (!failure) {
        failure = e instanceof StopPoll ? e : new StopPoll(asCollectorError(e), false);
        controller.abort(failure);
      }
    };
    try {
      for await (const page of this.#pages(w, r, signal)) {
        for (const invalid of page.invalid) {
          if (d.checkpoint.unusable(invalid.key, invalid.problem, d.clock.now())) {
            r.lost++;
            this.log.error('content lost: a listing item cannot be fetched', { problem: invalid.problem });
          }
        }
        for (const blob of sortByCreated(page.blobs)) {
          if (failure) break;
          if (this.#inProgress.has(blob.contentId) || d.checkpoint.isKnown(blob.contentId)) continue;
          const created = parseApiTime(blob.contentCreated)!;
          const apiNow = d.clock.now();
          if (d.checkpoint.isLate(created, cursorAtStart)) {
            d.checkpoint.late(created, apiNow);
            r.late++;
            this.log.info('late blob found', { contentId: blob.contentId, contentCreated: blob.contentCreated, latenessSeconds: Math.round((apiNow - created) / 1000) });
          }
          // Bounded: the next blob waits for free slots, and with them the listing.
          const slots = await this.#slots(signal);
          this.#inProgress.add(blob.contentId);
          const task: Promise<void> = this.#deliver(blob, undefined, r, signal, slots.queued)
            .catch(fail)
            .finally(() => {
              slots.done();
              this.#inProgress.delete(blob.contentId);
              tasks.delete(task);
            });
          tasks.add(task);
        }
        if (failure) break;
      }
    } catch (err) {
      fail(err);
    } finally {
      await Promise.all(tasks);
      done();
    }
    outer.throwIfAborted();
    if (failure) throw failure;
  }

  /**
   * Once per feed: lists the retention before the origin and marks what is there as skipped (the
   * initial look-back is the operator's choice), so that later sweeps can cover the whole retention
   * and deliver any blob that shows up there afterwards.
   */
  async #baseline(apiNow: number, r: PollResult, signal: AbortSignal): Promise<void> {
    const cp = this.deps.checkpoint;
    const windows = cp.baselineWindows(apiNow);
    let skipped = 0;
    for (const w of windows) {
      for await (const page of this.#pages(w, r, signal)) {
        for (const b of page.blobs) {
          if (cp.isKnown(b.contentId)) continue;
          cp.skipBeforeOrigin(b, blobExpiry(b, parseApiTime));
          skipped++;
        }
      }
    }
    cp.baselineDone();
    if (skipped) this.log.info('content listed before the initial look-back is skipped; later sweeps deliver anything that appears there afterwards', { blobs: skipped, origin: new Date(cp.s.origin).toISOString() });
  }

  /** The pages of a window; starts the subscription when the API says there is none or it is disabled. */
  async *#pages(w: Window, r: PollResult, signal: AbortSignal): AsyncGenerator<ContentPage> {
    const d = this.deps;
    // A subscription can be missing (AF20022, a new tenant) and, once started, be found disabled
    // (AF20023) by the very next call: start it as often as the API asks, a few times at most.
    for (let attempt = 0; ; attempt++) {
      try {
        yield* listContentPages(d.api, d.contentType, w.start, w.end, signal);
        return;
      } catch (err) {
        if (err instanceof ApiCallError && err.action === 'window') {
          throw new CollectorError('API_ERROR', `${err.message}; clock skew to the API: ${Math.round((d.clock.skewMs ?? 0) / 1000)} s`, { apiCode: err.apiCode, cause: err });
        }
        if (!(err instanceof ApiCallError) || err.action !== 'subscribe' || attempt >= 2) throw err;
        await this.#subscribe(err, r, signal);
      }
    }
  }

  /** Starts the feed's subscription; a disabled one that had to be restarted is a gap (reference §3.2). */
  async #subscribe(err: ApiCallError, r: PollResult, signal: AbortSignal): Promise<void> {
    const d = this.deps;
    const how = await startSubscription(d.api, d.contentType, signal);
    if (err.apiCode === 'AF20023' && how === 'started') {
      // After a restart the API gives only content made available from then on.
      // Which content is gone cannot be told: any blob not collected yet, late ones included,
      // anywhere in the feed's coverage. The gap says so, over that whole range.
      const now = d.clock.now();
      this.#reportGap(
        d.checkpoint.gap({
          from: Math.min(Math.max(d.checkpoint.s.origin, retentionFloor(now)), now),
          to: now,
          reason: `the ${d.contentType} subscription was disabled (AF20023) and has been restarted; the API gives no content made available before the restart, so content created in this range that was not collected yet is lost`,
        }),
        r,
      );
    } else {
      this.log.info('subscription started', { result: how, after: err.apiCode });
    }
  }

  #reportGap(g: Gap, r: PollResult): void {
    r.gaps.push(g);
    this.log.error('gap: content lost', { from: new Date(g.from).toISOString(), to: new Date(g.to).toISOString(), reason: g.reason });
  }

  /**
   * A blob in progress holds a blob slot until it is done (acked) and a download slot until its
   * records are queued in the output (`queued`), so slow acks never stop downloads while the
   * output has room. Both release idempotently.
   */
  async #slots(signal: AbortSignal): Promise<{ queued: () => void; done: () => void }> {
    const releaseBlob = await this.deps.blobs.acquire(signal);
    let releaseDownload: () => void;
    try {
      releaseDownload = await this.deps.pool.acquire(signal);
    } catch (err) {
      releaseBlob();
      throw err;
    }
    return {
      queued: releaseDownload,
      done: () => {
        releaseDownload();
        releaseBlob();
      },
    };
  }

  async #retryDue(r: PollResult, apiNow: number, outer: AbortSignal): Promise<void> {
    const d = this.deps;
    const { controller, done } = childController(outer);
    listenerBound(controller.signal, d.config.polling.concurrency);
    let failure: StopPoll | undefined;
    const tasks: Promise<void>[] = [];
    try {
      for (const e of d.checkpoint.dueRetries(apiNow)) {
        if (failure) break;
        const slots = await this.#slots(controller.signal).catch(() => undefined);
        if (!slots) break;
        tasks.push(
          this.#deliver(e, e, r, controller.signal, slots.queued)
            .catch((err) => {
              if (!failure) {
                failure = err instanceof StopPoll ? err : new StopPoll(asCollectorError(err), false);
                controller.abort(failure);
              }
            })
            .finally(slots.done),
        );
      }
      await Promise.all(tasks);
    } finally {
      done();
    }
    outer.throwIfAborted();
    if (failure) throw failure;
  }

  /**
   * Fetches one blob, encodes its records (dead-lettering the ones that cannot be sent), sends them
   * and waits for every ack; then the checkpoint marks it done. A failure is decided by outcome.ts.
   */
  async #deliver(blob: BlobRef, retry: RetryEntry | undefined, r: PollResult, signal: AbortSignal, queued: () => void = () => {}): Promise<void> {
    const d = this.deps;
    const cp = d.checkpoint;
    const created = parseInstant(blob.contentCreated)!;
    const createdMs = created.sec * 1000 + Math.floor(created.nsec / 1e6);
    const expiresAt = parseApiTime(blob.contentExpiration);
    if (expiresAt !== undefined && expiresAt <= d.clock.now()) {
      this.#lose(blob, createdMs, `blob ${blob.contentId} expired at ${blob.contentExpiration} before it could be fetched${retry ? ` (${retry.attempts} failed attempt(s); last error: ${retry.lastError})` : ''}`, r);
      return;
    }
    let records = 0;
    let dead = 0;
    // This blob's records per tag (recordsByTag), one update per batch, not per record.
    const sentByTag = new Map<string, number>();
    // Sends wait for their acks side by side; each batch is handed to the output (within its
    // memory bound) before the next is read, so the blob is never held encoded as a whole.
    const acked: Promise<void>[] = [];
    // One listener on the window's signal per blob (listenerBound counts blobs), however many
    // batches its records go out in: each send listens to the blob's own signal instead.
    const { controller: blobAbort, done: detach } = childController(signal);
    setMaxListeners(0, blobAbort.signal);
    let settled = false;
    try {
      const pages = await fetchBlobPages(d.api, blob.contentUri, blob.contentId, blobAbort.signal);
      const maxAlone = d.format.wire === 'forward' ? d.config.output.forward.maxRecordBytes : undefined;
      const batchBytes = d.format.wire === 'forward' ? d.config.output.forward.maxFrameBytes : 1024 * 1024;
      for (const page of pages) {
        const batches = encodeBatches(page, { format: d.format, router: d.router, contentType: d.contentType, fallback: created, maxFrameBytesAlone: maxAlone }, batchBytes);
        for (;;) {
          let next;
          try {
            next = batches.next();
          } catch (err) {
            if (err instanceof JsonBodyError) throw new CollectorError('API_BAD_RESPONSE', `fetch blob ${blob.contentId}: the body is not a JSON array of records (${err.message})`);
            throw err;
          }
          if (next.done) break;
          const enc = next.value;
          this.counters.timeFallbacks += enc.timeFallbacks;
          if (enc.deadLetters.length > 0) {
            const now = new Date().toISOString();
            const entries: DeadLetterEntry[] = enc.deadLetters.map((x) => ({
              time: now,
              tenant: d.tenant.name,
              contentType: d.contentType,
              contentId: blob.contentId,
              contentCreated: blob.contentCreated,
              tag: x.tag,
              reason: x.reason,
              ...(x.id !== undefined ? { id: x.id } : {}),
              record: x.raw,
            }));
            await d.deadLetters.append(entries);
            for (const x of enc.deadLetters) this.log.error('record dead-lettered', { contentId: blob.contentId, id: x.id ?? null, reason: x.reason, file: d.deadLetters.file });
            dead += entries.length;
          }
          if (enc.entries.length === 0) continue;
          await new Promise<void>((taken, failed) => {
            const p = d.sink.send(enc.entries as EncodedEntry[], blobAbort.signal, taken);
            acked.push(p);
            p.catch(failed);
          });
          records += enc.entries.length;
          // A batch holds records of one tag (encodeBatches).
          const tag = enc.entries[0]!.tag;
          sentByTag.set(tag, (sentByTag.get(tag) ?? 0) + enc.entries.length);
        }
      }
      pages.length = 0; // every record is encoded and queued: the blob's bytes may go while acks are awaited
      queued();
      await Promise.all(acked);
      settled = true;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const decision = decideFailure(err, { attempts: retry?.attempts ?? 0, notFound: retry?.notFound ?? 0, apiNow: d.clock.now(), expiresAt });
      switch (decision.kind) {
        case 'stop-run':
          throw new StopPoll(decision.error, true);
        case 'stop-poll':
          throw new StopPoll(decision.error, false);
        case 'lost':
          this.#lose(blob, createdMs, `blob ${blob.contentId}: ${decision.reason}`, r);
          return;
        case 'park': {
          const e = cp.park(blob, decision.reason, decision.retryAt, { notFound: decision.notFound });
          r.parked++;
          this.log.warn('blob parked in the retry queue', { contentId: blob.contentId, attempts: e.attempts, retryAt: new Date(decision.retryAt).toISOString(), error: decision.reason });
          return;
        }
      }
    } finally {
      detach();
      // A blob that failed takes its other batches out of the output's queue (it is sent again
      // whole when retried); batches already in a frame ride along, their acks ignored.
      if (!settled) blobAbort.abort(new Error(`blob ${blob.contentId} was not delivered`));
    }
    cp.delivered(blob, blobExpiry(blob, parseApiTime), records, dead);
    for (const [tag, n] of sentByTag) {
      const key = this.recordsByTag.has(tag) || this.recordsByTag.size < MAX_TAGS_COUNTED ? tag : OTHER_TAGS;
      this.recordsByTag.set(key, (this.recordsByTag.get(key) ?? 0) + n);
    }
    r.blobs++;
    r.records += records;
    r.deadLettered += dead;
  }

  #lose(blob: BlobRef, createdMs: number, reason: string, r: PollResult): void {
    const g = this.deps.checkpoint.lost(blob, blobExpiry(blob, parseApiTime), createdMs, reason);
    r.lost++;
    this.#reportGap(g, r);
  }
}

/** Oldest first, as the API lists them; ties by id so the order is deterministic (§3.4). */
function sortByCreated(blobs: BlobRef[]): BlobRef[] {
  return blobs
    .map((b) => ({ b, t: parseApiTime(b.contentCreated)! }))
    .sort((x, y) => x.t - y.t || (x.b.contentId < y.b.contentId ? -1 : 1))
    .map((x) => x.b);
}

/**
 * Each blob in progress listens to its window's signal while it waits for its acks, each download
 * once more for its HTTP request, and the listing loop once while it waits for slots: a known
 * bound (BLOBS_PER_DOWNLOAD_SLOT blob slots per download slot), set so that Node still warns
 * about a real listener leak beyond it.
 */
function listenerBound(signal: AbortSignal, concurrency: number): void {
  setMaxListeners(Math.max(10, (BLOBS_PER_DOWNLOAD_SLOT + 2) * concurrency + 4), signal);
}

/** Distinct tags FeedPoller.recordsByTag counts one by one (Microsoft has a few dozen workloads). */
export const MAX_TAGS_COUNTED = 256;
/** The recordsByTag key of records whose tag came after MAX_TAGS_COUNTED others (never a real tag). */
export const OTHER_TAGS = '';

/** Blobs that may wait for their acks per download slot (the output's byte bound applies too). */
export const BLOBS_PER_DOWNLOAD_SLOT = 16;

function asCollectorError(err: unknown): CollectorError {
  return err instanceof CollectorError ? err : new CollectorError('API_ERROR', describeError(err), { cause: err });
}
