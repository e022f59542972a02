/**
 * Every retry delay of the collector comes from this one table, with its reasons.
 *
 *   delay(n) = min(maxMs, baseMs · 2^n) · (0.5 + random/2)      n = attempts so far (0-based)
 *
 * Jitter keeps feeds and tenants from retrying in step. A server-given Retry-After wins when
 * present, capped at maxMs·4 so a bogus header cannot park a feed for days (undici's and ky's
 * retry handlers honour Retry-After the same way).
 */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

export const BACKOFF = {
  /** One API call that failed transiently (network, 5xx, AF500xx) before the call gives up. */
  apiCall: { baseMs: 1000, maxMs: 30_000 },
  /** 429 / 403 AF429 without Retry-After: the tenant's quota is per minute, so back off longer. */
  apiThrottled: { baseMs: 5000, maxMs: 120_000 },
  /** Getting the first token at start-up (network not up yet, Entra ID busy). */
  tokenStartup: { baseMs: 2000, maxMs: 60_000 },
  /** A parked blob in the retry queue: minutes, then hourly, until its contentExpiration. */
  blobRetry: { baseMs: 60_000, maxMs: 3_600_000 },
  /** Reconnecting to the Forward receiver (Fluent Bit restarting takes seconds). */
  forwardReconnect: { baseMs: 500, maxMs: 30_000 },
  /**
   * A tenant left out at start (credentials refused, API unreachable): a service tries it again
   * on its own, without holding up the other tenants; an admin's consent or a fixed network
   * brings it in within minutes.
   */
  tenantRetry: { baseMs: 60_000, maxMs: 15 * 60_000 },
  /** A feed whose poll failed (listing refused, subscription problem): the next poll waits longer. */
  feedError: { baseMs: 30_000, maxMs: 15 * 60_000 },
} as const satisfies Record<string, BackoffPolicy>;

/** A blob the API says does not exist (plain 404, AF20050) is retried this many times, then lost. */
export const NOT_FOUND_ATTEMPTS = 3;

export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy,
  opts: { retryAfterSeconds?: number; random?: () => number } = {},
): number {
  if (opts.retryAfterSeconds !== undefined && opts.retryAfterSeconds >= 0) {
    return Math.min(opts.retryAfterSeconds * 1000, policy.maxMs * 4);
  }
  const raw = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
  const r = (opts.random ?? Math.random)();
  return Math.round(raw * (0.5 + r / 2));
}
