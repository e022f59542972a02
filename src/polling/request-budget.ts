import type { Clock } from '../support/clock.ts';
import { sleep } from '../support/sleep.ts';

/**
 * One tenant's request budget: every API call of every content type of the tenant takes one
 * request from it before it is sent (reference management-api.md §5: about 2,000 requests a
 * minute per PublisherIdentifier, counted by the service for the tenant as a whole).
 *
 * A token bucket: `perMinute / 60` requests a second, with a burst of at most a tenth of a minute's
 * worth, so any 60-second window holds at most perMinute + perMinute/10 requests; the default
 * 1,800 a minute stays under the 2,000 the API allows even then. When the API says it is throttling
 * anyway (429, 403 AF429), `pause()` holds every call of the tenant for the Retry-After (or the
 * backoff), instead of each call hammering on alone.
 *
 * `take()` waits (abortably) when the bucket is empty; the waits are served in order.
 */
export class RequestBudget {
  readonly #ratePerMs: number;
  readonly #burst: number;
  #tokens: number;
  #at: number;
  #pausedUntil = 0;
  #queue: Promise<void> = Promise.resolve();
  /** Requests taken, and how long callers waited for the budget in all (ms): for status and the bench. */
  readonly stats = { taken: 0, waitedMs: 0, pauses: 0 };

  constructor(
    readonly perMinute: number,
    private readonly clock: Clock = () => performance.now(),
  ) {
    this.#ratePerMs = perMinute / 60_000;
    this.#burst = Math.max(1, Math.floor(perMinute / 10));
    this.#tokens = this.#burst;
    this.#at = clock();
  }

  /** How long a request asked for now would have to wait (pure; no token taken). */
  waitMs(): number {
    const now = this.clock();
    const tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) * this.#ratePerMs);
    const forPause = Math.max(0, this.#pausedUntil - now);
    const forToken = tokens >= 1 ? 0 : (1 - tokens) / this.#ratePerMs;
    return Math.max(forPause, forToken);
  }

  /** Takes one request from the budget, waiting for it if need be. */
  take(signal: AbortSignal): Promise<void> {
    const turn = this.#queue.then(async () => {
      for (;;) {
        signal.throwIfAborted();
        const wait = this.waitMs();
        if (wait <= 0) break;
        this.stats.waitedMs += wait;
        await sleep(Math.ceil(wait), signal);
      }
      this.#refill();
      this.#tokens -= 1;
      this.stats.taken++;
    });
    // The next caller queues behind this one whether it succeeds or is aborted.
    this.#queue = turn.catch(() => {});
    // A caller aborted while others are ahead of it in line leaves at once.
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      turn.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** The API throttled us: no request of this tenant goes out for `ms`. */
  pause(ms: number): void {
    this.stats.pauses++;
    this.#pausedUntil = Math.max(this.#pausedUntil, this.clock() + ms);
  }

  #refill(): void {
    const now = this.clock();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) * this.#ratePerMs);
    this.#at = now;
  }
}
