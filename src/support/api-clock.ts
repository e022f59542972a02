import type { Clock } from './clock.ts';

/**
 * The API's clock, as this process sees it (DESIGN guarantee 4b). Every decision about the API —
 * listing windows, the 7-day retention, the initial look-back, blob expiry, lag — is made in this
 * time: a local clock that is days off must neither plan windows in the API's future nor declare
 * content expired (reference management-api.md §9.3; Beats adjusts its clock the same way).
 *
 * It is anchored on the `Date` header of Microsoft's responses and carried forward on the
 * monotonic clock, not the local wall clock: a local clock that jumps while the collector runs
 * (NTP stepping it, a VM resumed) changes nothing until the next response re-anchors it. Before
 * the first response, the local clock is all there is.
 *
 * The Date header has one-second resolution: the server's time when it answered lies in
 * [date, date + 1 s), so the midpoint is taken, and a response within a second of the current
 * estimate does not move it (latency and resolution noise).
 */
export class ApiClock {
  #anchor?: { server: number; mono: number };
  /**
   * @param local the local wall clock (ms since epoch), used until the first response
   * @param monotonic a clock that never jumps (ms; performance.now). Tests that move time for the
   *   simulator and the collector together pass their clock for both.
   */
  private readonly monotonic: Clock;
  constructor(
    readonly local: Clock,
    monotonic?: Clock,
  ) {
    this.monotonic = monotonic ?? (() => performance.now());
  }

  /** Local clock minus the API's, in ms; undefined until a response has been seen. */
  get skewMs(): number | undefined {
    return this.#anchor === undefined ? undefined : this.local() - this.now();
  }

  /** Feeds one response's `Date` header (ms since epoch). */
  observe(serverDateMs: number): void {
    if (!Number.isFinite(serverDateMs)) return;
    const measured = serverDateMs + 500;
    const mono = this.monotonic();
    if (this.#anchor === undefined || Math.abs(measured - (this.#anchor.server + (mono - this.#anchor.mono))) > 1000) {
      this.#anchor = { server: measured, mono };
    }
  }

  /** Feeds a raw `Date` header value (ignored when missing or unreadable). */
  observeHeader(value: string | null | undefined): void {
    if (value) this.observe(Date.parse(value));
  }

  /** Now, in the API's time. */
  now(): number {
    return this.#anchor === undefined ? this.local() : this.#anchor.server + (this.monotonic() - this.#anchor.mono);
  }
}
