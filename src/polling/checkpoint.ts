/**
 * The checkpoint of one feed (tenant × content type): the only place that changes a feed's
 * persisted state and its counters. Every change is also handed, as a small journal operation, to
 * the state store (src/state/state-store.ts), which makes it durable in batches.
 *
 * - `cursor`: every blob with contentCreated < cursor that the API listed by the time its window
 *   was completed has been delivered, dead-lettered record by record, parked in the retry queue,
 *   or counted lost. It moves only when a whole listing window is done.
 * - `origin`: where this feed's coverage starts (the initial look-back). Sweeps never list before it.
 * - `done`: fingerprints of the content ids finished with, kept until each blob's
 *   contentExpiration (done-set.ts): re-listing skips them, however late a blob appears.
 * - `retry`: blobs that kept failing, retried with backoff until their contentExpiration (DESIGN
 *   guarantee 4); an expired one is counted lost and reported as a gap, never dropped silently.
 *
 * All times are in the API's time (support/api-clock.ts).
 */
import { API_RETENTION_MS, MAX_WINDOW_MS, RETENTION_SAFETY_MS } from '../management-api/limits.ts';
import type { BlobRef } from '../management-api/list-content.ts';
import { DoneSet, fingerprint, toMinutes } from './done-set.ts';

export type { BlobRef };

export interface RetryEntry extends BlobRef {
  attempts: number;
  /** ms epoch (API time) of the next attempt. */
  nextAttemptAt: number;
  lastError: string;
  /** Attempts that found no blob (plain 404, AF20050): a few are allowed before it counts as lost. */
  notFound?: number;
}

/** The small, persisted part of a feed's state (rewritten whole in the journal on each change). */
export interface FeedScalars {
  /** The tenant id this feed was collected for: a changed tenant_id under the same name is refused. */
  tenantId: string;
  origin: number;
  cursor: number;
  /** API time at which the last complete sweep started (0: never). */
  lastSweepAt: number;
  /**
   * Whether the content listed before the origin (the initial look-back) has been marked as
   * skipped. Sweeps then cover the whole retention: a blob created before the origin but listed
   * only later is new content and is delivered, while the backfill the operator chose not to take
   * stays skipped.
   */
  baselined: boolean;
  blobsDelivered: number;
  recordsDelivered: number;
  /** Records written to the dead-letter file instead of the output. */
  deadLettered: number;
  /** Blobs that could not be delivered at all (expired, refused, unusable listing items). */
  lost: number;
  /** Losses the API forced, each with its time range: expired blobs, a restarted subscription, a cursor clamped by retention. */
  gaps: number;
  /** Blobs found only after their window was done (overlap or sweep), and the largest delay seen. */
  lateBlobs: number;
  maxLatenessSeconds: number;
  lastError?: string;
}

/** One change to one feed, as the journal records it (key = feed key). */
export type JournalOp =
  | { k: string; s: FeedScalars }
  | { k: string; d: string; x: number }
  | { k: string; r: RetryEntry }
  | { k: string; rd: string };

export interface Window {
  start: number;
  end: number;
}

/** A gap: content the API will never give us, with its time range (contentCreated, API time). */
export interface Gap {
  from: number;
  to: number;
  reason: string;
}

/** The oldest listing start the API accepts now, with a safety margin. */
export function retentionFloor(apiNow: number): number {
  return apiNow - API_RETENTION_MS + RETENTION_SAFETY_MS;
}

/**
 * Cuts [from, to) into listing windows of at most 24 h (AF20055; a longer window may silently
 * return partial results, §4). The listing format has second precision: the start is floored so
 * rounding never skips a blob.
 */
export function planWindows(from: number, to: number): Window[] {
  let start = Math.floor(from / 1000) * 1000;
  const stop = Math.floor(to / 1000) * 1000;
  const windows: Window[] = [];
  while (start < stop) {
    const e = Math.min(start + MAX_WINDOW_MS, stop);
    windows.push({ start, end: e });
    start = e;
  }
  return windows;
}

/** Expiry of a done-set entry: the blob's contentExpiration, else contentCreated + retention + 1 h. */
export function blobExpiry(blob: BlobRef, parse: (v: string) => number | undefined): number {
  return parse(blob.contentExpiration) ?? (parse(blob.contentCreated) ?? 0) + API_RETENTION_MS + 3600_000;
}

export function newScalars(tenantId: string, origin: number, createdAt: number): FeedScalars {
  return {
    tenantId,
    origin,
    cursor: origin,
    // The first poll lists everything since the origin: no sweep is due before an interval passes.
    lastSweepAt: createdAt,
    baselined: false,
    blobsDelivered: 0,
    recordsDelivered: 0,
    deadLettered: 0,
    lost: 0,
    gaps: 0,
    lateBlobs: 0,
    maxLatenessSeconds: 0,
  };
}

export class FeedCheckpoint {
  constructor(
    readonly key: string,
    readonly s: FeedScalars,
    readonly done: DoneSet,
    readonly retry: Map<string, RetryEntry>,
    private readonly journal: (op: JournalOp) => void,
  ) {}

  /** A feed seen for the first time: coverage starts `lookbackMs` back, never before what the API keeps. */
  static create(key: string, tenantId: string, apiNow: number, lookbackMs: number, journal: (op: JournalOp) => void): FeedCheckpoint {
    const origin = Math.max(apiNow - lookbackMs, retentionFloor(apiNow));
    const cp = new FeedCheckpoint(key, newScalars(tenantId, origin, apiNow), new DoneSet(), new Map(), journal);
    cp.#scalarsChanged();
    return cp;
  }

  #scalarsChanged(): void {
    this.journal({ k: this.key, s: { ...this.s } });
  }

  get cursor(): number {
    return this.s.cursor;
  }

  /** Delivered, lost or parked already: re-listing must not send it again. */
  isKnown(contentId: string): boolean {
    return this.retry.has(contentId) || this.done.has(fingerprint(contentId));
  }

  /** Was this listed blob late, i.e. its window was already complete before it showed up? */
  isLate(createdMs: number, cursorAtPollStart: number): boolean {
    return createdMs < cursorAtPollStart;
  }

  /** Retry-queue entries due at `apiNow`, oldest first. */
  dueRetries(apiNow: number): RetryEntry[] {
    const due: RetryEntry[] = [];
    for (const r of this.retry.values()) if (r.nextAttemptAt <= apiNow) due.push(r);
    return due.sort((a, b) => a.nextAttemptAt - b.nextAttemptAt);
  }

  #finish(blob: BlobRef, expiresMs: number): void {
    const fp = fingerprint(blob.contentId);
    const x = toMinutes(expiresMs);
    this.done.add(fp, x);
    this.journal({ k: this.key, d: fp, x });
    if (this.retry.delete(blob.contentId)) this.journal({ k: this.key, rd: blob.contentId });
  }

  /** Every record of the blob is acked (or dead-lettered): it is done. */
  delivered(blob: BlobRef, expiresMs: number, records: number, deadLettered: number): void {
    this.#finish(blob, expiresMs);
    this.s.blobsDelivered++;
    this.s.recordsDelivered += records;
    this.s.deadLettered += deadLettered;
    this.#scalarsChanged();
  }

  /** A blob found after its window was done: counted, with how late it was. */
  late(createdMs: number, apiNow: number): void {
    this.s.lateBlobs++;
    this.s.maxLatenessSeconds = Math.max(this.s.maxLatenessSeconds, Math.round((apiNow - createdMs) / 1000));
    this.#scalarsChanged();
  }

  /** Parks a failing blob (or re-schedules one already parked). */
  park(blob: BlobRef, error: string, nextAttemptAt: number, opts: { notFound?: boolean } = {}): RetryEntry {
    const prev = this.retry.get(blob.contentId);
    const { contentType, contentId, contentUri, contentCreated, contentExpiration } = blob;
    const entry: RetryEntry = {
      contentType,
      contentId,
      contentUri,
      contentCreated,
      contentExpiration,
      attempts: (prev?.attempts ?? 0) + 1,
      nextAttemptAt,
      lastError: error,
      ...(opts.notFound || prev?.notFound ? { notFound: (prev?.notFound ?? 0) + (opts.notFound ? 1 : 0) } : {}),
    };
    this.retry.set(contentId, entry);
    this.journal({ k: this.key, r: entry });
    this.s.lastError = error;
    this.#scalarsChanged();
    return entry;
  }

  /**
   * A blob that can never be delivered: counted lost, and a gap over its creation time. It joins
   * the done-set so re-listing does not count it again.
   */
  lost(blob: BlobRef, expiresMs: number, createdMs: number, reason: string): Gap {
    this.#finish(blob, expiresMs);
    this.s.lost++;
    return this.gap({ from: createdMs, to: createdMs, reason });
  }

  /** A listing item that cannot be fetched at all (no id, no usable URI): lost, counted once by `key`. */
  unusable(key: string, problem: string, apiNow: number): boolean {
    const fp = fingerprint(key);
    if (this.done.has(fp)) return false;
    const x = toMinutes(apiNow + API_RETENTION_MS + 3600_000);
    this.done.add(fp, x);
    this.journal({ k: this.key, d: fp, x });
    this.s.lost++;
    this.s.lastError = problem;
    this.#scalarsChanged();
    return true;
  }

  /** Records a gap (the API forced a loss) with its time range. */
  gap(g: Gap): Gap {
    this.s.gaps++;
    this.s.lastError = `gap ${new Date(g.from).toISOString()}..${new Date(g.to).toISOString()}: ${g.reason}`;
    this.#scalarsChanged();
    return g;
  }

  /** A window is complete: move the cursor to its end (never backwards). */
  completeWindow(end: number): void {
    if (end > this.s.cursor) {
      this.s.cursor = end;
      this.#scalarsChanged();
    }
  }

  /** A sweep that started at `startedAt` went through the whole retention. */
  sweepDone(startedAt: number): void {
    this.s.lastSweepAt = startedAt;
    this.#scalarsChanged();
  }

  setError(message: string): void {
    if (this.s.lastError === message) return;
    this.s.lastError = message;
    this.#scalarsChanged();
  }

  /** A clean poll with nothing waiting clears the last error, so an alert on it stops firing (losses stay counted). */
  clearError(): void {
    if (this.s.lastError === undefined || this.retry.size > 0) return;
    delete this.s.lastError;
    this.#scalarsChanged();
  }

  /**
   * Start-of-poll corrections, in API time:
   * - a cursor ahead of the API's now (saved while the local clock was fast) is pulled back, and a
   *   sweep is due at once to re-list whatever the bogus cursor skipped;
   * - a cursor older than the API keeps is clamped: content before the new floor is a gap.
   * Returns what happened, for the caller to log.
   */
  correct(apiNow: number): { pulledBackFrom?: number; gap?: Gap } {
    const out: { pulledBackFrom?: number; gap?: Gap } = {};
    if (this.s.cursor > apiNow) {
      out.pulledBackFrom = this.s.cursor;
      this.s.cursor = apiNow;
      this.s.origin = Math.min(this.s.origin, apiNow);
      this.s.lastSweepAt = 0;
      this.#scalarsChanged();
    } else if (this.s.lastSweepAt > apiNow) {
      this.s.lastSweepAt = 0;
      this.#scalarsChanged();
    }
    const floor = retentionFloor(apiNow);
    if (this.s.cursor < floor) {
      const from = this.s.cursor;
      this.s.cursor = floor;
      out.gap = this.gap({ from, to: floor, reason: "the checkpoint fell behind the API's 7-day retention: content created in this range can no longer be listed" });
    }
    return out;
  }

  /** Listing windows of a normal poll: from `overlap` before the cursor (never before the origin or the retention floor) to `end`. */
  pollWindows(end: number, overlapMs: number, apiNow: number): Window[] {
    const from = Math.max(this.s.cursor - overlapMs, this.s.origin, retentionFloor(apiNow));
    return planWindows(from, end);
  }

  /**
   * Windows of a sweep of the whole retention up to where the normal poll's overlap begins;
   * undefined when no sweep is due (a due sweep over an empty range is [] and still counts as done).
   */
  sweepWindows(apiNow: number, overlapMs: number, intervalMs: number): Window[] | undefined {
    if (intervalMs <= 0 || apiNow - this.s.lastSweepAt < intervalMs) return undefined;
    const from = this.s.baselined ? retentionFloor(apiNow) : Math.max(this.s.origin, retentionFloor(apiNow));
    return planWindows(from, this.s.cursor - overlapMs);
  }

  /** Windows listed once to mark what existed before the origin as skipped; [] when done or empty. */
  baselineWindows(apiNow: number): Window[] {
    return this.s.baselined ? [] : planWindows(retentionFloor(apiNow), this.s.origin);
  }

  /** A blob that was already listable before the initial look-back: skipped, on purpose, never sent. */
  skipBeforeOrigin(blob: BlobRef, expiresMs: number): void {
    const fp = fingerprint(blob.contentId);
    if (this.done.has(fp)) return;
    const x = toMinutes(expiresMs);
    this.done.add(fp, x);
    this.journal({ k: this.key, d: fp, x });
  }

  baselineDone(): void {
    this.s.baselined = true;
    this.#scalarsChanged();
  }

  /** Drops done-set entries whose blobs have expired. */
  prune(apiNow: number): number {
    return this.done.prune(apiNow - 3600_000);
  }
}
