/**
 * Backoff delay for attempt n (0-based):
 *   delay = min(maxMs, baseMs · 2^n) · (0.5 + random/2)      (jitter keeps feeds from retrying in step)
 * A server-given Retry-After wins when present, capped by maxMs·4 so a bogus header cannot park
 * a feed for days.
 */
export function backoffDelay(
  attempt: number,
  opts: { baseMs?: number; maxMs?: number; retryAfterSeconds?: number; random?: () => number } = {},
): number {
  const base = opts.baseMs ?? 1000;
  const max = opts.maxMs ?? 60_000;
  if (opts.retryAfterSeconds !== undefined && opts.retryAfterSeconds >= 0) {
    return Math.min(opts.retryAfterSeconds * 1000, max * 4);
  }
  const raw = Math.min(max, base * 2 ** Math.min(attempt, 30));
  const r = (opts.random ?? Math.random)();
  return Math.round(raw * (0.5 + r / 2));
}
