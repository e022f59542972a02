/**
 * Dates on the wire (reference §4, §7.1, §9.9):
 * - record `CreationTime` is UTC usually WITHOUT a zone and without fraction ("2015-06-29T20:03:19");
 *   RFC 3339 parsers reject it and `new Date()` would read it as local time, so parse by hand.
 * - blob `contentCreated` / `contentExpiration` carry `Z` and milliseconds.
 * - the listing's startTime/endTime are sent as `YYYY-MM-DDTHH:MM:SS` (documented, UTC).
 */
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i;

/** Parses an API timestamp as UTC (unless it names an offset). Returns ms since epoch, or undefined. */
export function parseApiTime(v: unknown): number | undefined {
  if (typeof v !== 'string') return undefined;
  const m = ISO.exec(v.trim());
  if (!m) return undefined;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = m;
  const ms = Number((frac + '000').slice(0, 3));
  let t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  // Date.UTC rolls over silently (month 13, day 32): reject values that did not round-trip.
  const check = new Date(t);
  if (check.getUTCFullYear() !== Number(y) || check.getUTCMonth() !== Number(mo) - 1 || check.getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59 || Number(s) > 60) {
    return undefined;
  }
  if (zone && zone.toUpperCase() !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    t -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
  }
  return Number.isFinite(t) ? t : undefined;
}

/** Nanoseconds part of a CreationTime with more than millisecond precision (rare, but kept). */
export function subMillisNanos(v: string): number {
  const m = /\.(\d{4,9})/.exec(v);
  if (!m) return 0;
  return Number((m[1] + '000000000').slice(3, 9));
}

/** The documented listing format, UTC, second precision: 2026-11-25T10:00:00. */
export function formatListTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19);
}
