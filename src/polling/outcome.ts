/**
 * The one place that decides what a failed blob delivery means (DESIGN guarantee 4): parked in
 * the retry queue, lost for good (a gap the API forced), or a problem bigger than the blob that
 * stops the feed's poll or the whole run. Pure: the feed poller carries the decision out.
 *
 * Delivered and dead-lettered are decided elsewhere on success (every record acked, or written to
 * the dead-letter file): a record that cannot be sent never fails its blob.
 */
import { CollectorError, describeError } from '../errors.ts';
import { ApiCallError } from '../management-api/api-client.ts';
import { BACKOFF, backoffDelay, NOT_FOUND_ATTEMPTS } from './backoff.ts';

export type FailureDecision =
  /** Try again at `retryAt` (API time); `notFound` counts towards NOT_FOUND_ATTEMPTS. */
  | { kind: 'park'; retryAt: number; reason: string; notFound: boolean }
  /** Can never be delivered: counted lost, a gap over the blob's creation time. */
  | { kind: 'lost'; reason: string }
  /** Not about this blob (credentials refused, permission missing, subscription gone): the poll stops, the blob stays unfinished and is listed again. */
  | { kind: 'stop-poll'; error: CollectorError }
  /** The state cannot be written: going on would deliver records without a checkpoint. */
  | { kind: 'stop-run'; error: CollectorError };

export interface FailureContext {
  /** Attempts already made for this blob (retry-queue entry), 0 for a first try. */
  attempts: number;
  /** Attempts that found no blob so far. */
  notFound: number;
  /** API time now, and the blob's expiry (API time) when known. */
  apiNow: number;
  expiresAt?: number;
  random?: () => number;
}

export function decideFailure(err: unknown, ctx: FailureContext): FailureDecision {
  const e = err instanceof CollectorError ? err : new CollectorError('API_ERROR', describeError(err), { cause: err });
  const reason = describeError(e);
  if (e.code === 'STATE_IO' || e.code === 'STATE_CORRUPT') return { kind: 'stop-run', error: e };
  if (ctx.expiresAt !== undefined && ctx.expiresAt <= ctx.apiNow) return { kind: 'lost', reason: `expired before it could be fetched; last error: ${reason}` };
  if (e instanceof ApiCallError) {
    switch (e.action) {
      case 'expired':
      case 'gone':
        return { kind: 'lost', reason };
      case 'not-found':
        if (ctx.notFound + 1 >= NOT_FOUND_ATTEMPTS) return { kind: 'lost', reason: `${reason} (after ${NOT_FOUND_ATTEMPTS} attempts)` };
        return park(ctx, reason, true);
      case 'subscribe':
      case 'fatal':
        return { kind: 'stop-poll', error: e };
      default:
        break;
    }
  }
  // Credentials refused or the TLS trust of the Microsoft side broken: every blob would fail alike.
  if (e.code === 'AUTH_FAILED' && e.fatal) return { kind: 'stop-poll', error: e };
  if (e.code === 'API_UNAVAILABLE' && e.fatal) return { kind: 'stop-poll', error: e };
  // A blob-specific problem that retrying cannot fix (e.g. a NextPageUri on a foreign host).
  if (e.code === 'API_BAD_RESPONSE' && e.fatal) return { kind: 'lost', reason };
  // Anything else (a body that is not a JSON array, throttling or 5xx past the call's retries, a
  // network failure): park it and try again later, until it expires.
  return park(ctx, reason, false);
}

function park(ctx: FailureContext, reason: string, notFound: boolean): FailureDecision {
  const delay = backoffDelay(ctx.attempts, BACKOFF.blobRetry, { random: ctx.random });
  return { kind: 'park', retryAt: ctx.apiNow + delay, reason, notFound };
}
