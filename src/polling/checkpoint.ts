/**
 * The checkpoint of one feed (tenant × content type) and the pure decisions on it.
 *
 * - `cursor`: every blob with contentCreated < cursor that the API listed has been delivered
 *   (acked) or parked in the retry queue. It moves only when a whole listing window is done.
 * - `done`: content ids delivered at or after `cursor - overlap`. Each poll re-lists from
 *   `cursor - overlap` to catch blobs the API lists late (reference §4 "Latency", §9.4); the
 *   done-set keeps those re-listings from sending a blob twice, and also lets a restart skip the
 *   blobs of a half-finished window. Pruned by the blob's contentCreated (its arrival), never by
 *   the records' CreationTime (§9.4).
 * - `retry`: blobs that kept failing, retried with backoff until their contentExpiration
 *   (DESIGN guarantee 4); an expired one is counted in `lost` and reported, never dropped silently.
 */
export interface BlobRef {
  contentType: string;
  contentId: string;
  contentUri: string;
  contentCreated: string;
  contentExpiration: string;
}

export interface RetryEntry extends BlobRef {
  attempts: number;
  /** ms epoch of the next attempt. */
  nextAttemptAt: number;
  lastError: string;
}

export interface FeedState {
  cursor: number;
  done: Record<string, number>;
  retry: RetryEntry[];
  blobsDelivered: number;
  recordsDelivered: number;
  lost: number;
  lastError?: string;
}

export const MAX_WINDOW_MS = 24 * 3600_000;
/** The API rejects start times more than 7 days back (AF20055); stay 10 min inside to absorb skew and queueing (§9.2). */
export const API_RETENTION_MS = 7 * 24 * 3600_000;
export const RETENTION_SAFETY_MS = 10 * 60_000;

export function newFeedState(now: number, initialLookbackMs: number): FeedState {
  return { cursor: now - initialLookbackMs, done: {}, retry: [], blobsDelivered: 0, recordsDelivered: 0, lost: 0 };
}

export interface Window {
  start: number;
  end: number;
}

/**
 * Listing windows for one poll: from `cursor - overlap` (never older than the API allows) up to
 * `end`, cut into pieces of at most 24 h (AF20055; a longer window may silently return partial
 * results, §4). Returns [] when there is nothing to list.
 */
export function planWindows(cursor: number, end: number, overlapMs: number, now: number): Window[] {
  const oldest = now - API_RETENTION_MS + RETENTION_SAFETY_MS;
  let start = Math.max(cursor - overlapMs, oldest);
  // The listing format has second precision; floor so rounding never skips a blob.
  start = Math.floor(start / 1000) * 1000;
  const stop = Math.floor(end / 1000) * 1000;
  const windows: Window[] = [];
  while (start < stop) {
    const e = Math.min(start + MAX_WINDOW_MS, stop);
    windows.push({ start, end: e });
    start = e;
  }
  return windows;
}

/** What the start-up policy decided about a loaded cursor (logged by the caller). */
export type CursorNote = 'new' | 'resumed' | 'clamped';

/** A cursor older than the API's retention is clamped: content before it is gone (warn about loss). */
export function clampCursor(state: FeedState, now: number): CursorNote {
  const oldest = now - API_RETENTION_MS + RETENTION_SAFETY_MS;
  if (state.cursor < oldest) {
    state.cursor = oldest;
    return 'clamped';
  }
  return 'resumed';
}

export function isDone(state: FeedState, contentId: string): boolean {
  return Object.hasOwn(state.done, contentId) || state.retry.some((r) => r.contentId === contentId);
}

export function markDelivered(state: FeedState, blob: BlobRef, createdMs: number, records: number): void {
  state.done[blob.contentId] = createdMs;
  state.retry = state.retry.filter((r) => r.contentId !== blob.contentId);
  state.blobsDelivered++;
  state.recordsDelivered += records;
}

/** A window is complete: move the cursor to its end (never backwards) and prune the done-set. */
export function completeWindow(state: FeedState, windowEnd: number, overlapMs: number): void {
  if (windowEnd > state.cursor) state.cursor = windowEnd;
  const keepFrom = state.cursor - overlapMs - 60_000;
  for (const [id, created] of Object.entries(state.done)) {
    if (created < keepFrom) delete state.done[id];
  }
}

/** Parks a failing blob (or re-schedules one already parked). */
export function park(state: FeedState, blob: BlobRef, error: string, now: number, delayMs: number): void {
  const existing = state.retry.find((r) => r.contentId === blob.contentId);
  if (existing) {
    existing.attempts++;
    existing.nextAttemptAt = now + delayMs;
    existing.lastError = error;
  } else {
    const { contentType, contentId, contentUri, contentCreated, contentExpiration } = blob;
    state.retry.push({ contentType, contentId, contentUri, contentCreated, contentExpiration, attempts: 1, nextAttemptAt: now + delayMs, lastError: error });
  }
  state.lastError = error;
}

/** Removes a blob that can no longer be fetched and counts it as lost. */
export function markLost(state: FeedState, contentId: string, reason: string): void {
  state.retry = state.retry.filter((r) => r.contentId !== contentId);
  state.lost++;
  state.lastError = reason;
}

/** Retry-queue entries due now. */
export function dueRetries(state: FeedState, now: number): RetryEntry[] {
  return state.retry.filter((r) => r.nextAttemptAt <= now);
}
