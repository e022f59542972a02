import type { Clock } from './clock.ts';

/**
 * The API's clock, as this process sees it: the local clock corrected by the skew measured from
 * the `Date` header of Microsoft's responses (reference management-api.md §9.3; Beats adjusts its
 * clock the same way). Every decision about the API — listing windows, the 7-day retention, the
 * initial look-back, blob expiry, lag — is made in this time (DESIGN guarantee 4b): a local clock
 * that is days fast must neither plan windows in the API's future nor declare content expired.
 *
 * The Date header has one-second resolution: the server's time when it answered lies in
 * [date, date + 1 s), so the midpoint is taken. Measurements within a second of the current
 * estimate are ignored (network latency and resolution noise); a larger change (NTP fixed the
 * local clock, a VM resumed) is taken at once.
 */
export class ApiClock {
  #skewMs: number | undefined;
  constructor(readonly local: Clock) {}

  /** Local clock minus the API's, in ms; undefined until a response has been seen. */
  get skewMs(): number | undefined {
    return this.#skewMs;
  }

  /** Feeds one response's `Date` header (ms since epoch), read at local time `localMs`. */
  observe(serverDateMs: number, localMs = this.local()): void {
    if (!Number.isFinite(serverDateMs)) return;
    const skew = localMs - (serverDateMs + 500);
    if (this.#skewMs === undefined || Math.abs(skew - this.#skewMs) > 1000) this.#skewMs = skew;
  }

  /** Feeds a raw `Date` header value (ignored when missing or unreadable). */
  observeHeader(value: string | null | undefined): void {
    if (value) this.observe(Date.parse(value));
  }

  /** Now, in the API's time. Before any measurement, the local clock. */
  now(): number {
    return this.local() - (this.#skewMs ?? 0);
  }
}
