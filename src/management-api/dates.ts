/**
 * The one time parser, for both sides of the API (the collector and the embedded simulator).
 *
 * Dates on the wire (reference §4, §7.1, §9.9):
 * - record `CreationTime` is UTC, usually WITHOUT a zone and without a fraction
 *   ("2015-06-29T20:03:19"); RFC 3339 parsers reject it and `new Date()` would read it as local
 *   time, so it is parsed by hand. Some records carry more than millisecond precision: every
 *   digit up to nanoseconds is kept (it becomes the Forward EventTime).
 * - blob `contentCreated` / `contentExpiration` carry `Z` and milliseconds.
 * - the listing's startTime/endTime are sent as `YYYY-MM-DDTHH:MM:SS` (documented, UTC); the
 *   service also takes a fraction and a trailing `Z` (§4 "Time formats"), nothing documents
 *   offsets, so the simulator refuses them (`strict`).
 */
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:([T ])(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i;

/** A parsed instant: whole seconds since the epoch and nanoseconds within that second. */
export interface Instant {
  sec: number;
  nsec: number;
}

/**
 * Parses an API timestamp as UTC (unless it names an offset). `strict` is the API's own rule
 * (simulator): a `T` separator, at most 7 fraction digits (.NET ticks), `Z` or no zone.
 * Returns undefined for anything else, including calendar overflow (2024-02-30, 25:00), which
 * Date.UTC would silently roll over.
 */
export function parseInstant(v: unknown, opts: { strict?: boolean } = {}): Instant | undefined {
  if (typeof v !== 'string') return undefined;
  const m = ISO.exec(opts.strict ? v : v.trim());
  if (!m) return undefined;
  const [, y, mo, d, sep, h = '0', mi = '0', s = '0', frac = '', zone] = m;
  if (opts.strict && (sep === ' ' || frac.length > 7 || (zone !== undefined && zone !== 'Z') || /\s/.test(v))) return undefined;
  const [Y, M, D, H, MI, S] = [Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(s)];
  // Calendar overflow checked by range, not by a Date round trip: this runs once per record.
  // Years below 100 are refused as before (Date.UTC would read them as 19xx).
  if (Y < 100 || M < 1 || M > 12 || D < 1 || D > daysInMonth(Y, M) || H > 23 || MI > 59 || S > 59) return undefined;
  const ms = Date.UTC(Y, M - 1, D, H, MI, S);
  let sec = Math.floor(ms / 1000);
  if (zone && zone.toUpperCase() !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const hours = Number(digits.slice(0, 2));
    const minutes = Number(digits.slice(2));
    if (hours > 23 || minutes > 59) return undefined;
    sec -= sign * (hours * 60 + minutes) * 60;
  }
  const nsec = frac ? Number((frac + '00000000').slice(0, 9)) : 0;
  return Number.isFinite(sec) ? { sec, nsec } : undefined;
}

function daysInMonth(y: number, m: number): number {
  if (m !== 2) return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
}

/** Milliseconds since the epoch (fraction below a millisecond dropped), or undefined. */
export function parseApiTime(v: unknown, opts: { strict?: boolean } = {}): number | undefined {
  const t = parseInstant(v, opts);
  return t === undefined ? undefined : t.sec * 1000 + Math.floor(t.nsec / 1_000_000);
}

/** The documented listing format, UTC, second precision: 2026-11-25T10:00:00. */
export function formatListTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19);
}

/** ISO-8601 with milliseconds and Z, the form the real listing uses for contentCreated. */
export function isoMs(ms: number): string {
  return new Date(ms).toISOString();
}
