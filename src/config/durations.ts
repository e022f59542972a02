/**
 * Durations in the config: a number of seconds, or a string with a unit: `500ms`, `30s`, `5m`,
 * `24h`, `7d`. Returns milliseconds, or undefined when the value is not a duration.
 */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v * 1000 : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit]!;
  return Math.round(n * factor);
}

/** Human form of a millisecond duration for messages, e.g. 90000 → "1m30s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  let s = Math.round(ms / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s || parts.length === 0) parts.push(`${s}s`);
  return parts.join('');
}

/**
 * True when a duration is written as zero (`0`, `"0"`, `0s`, `0m`, ...), the way a config turns a
 * periodic job off. A tiny non-zero value that rounds to 0 ms is not zero.
 */
export function isZeroDuration(v: unknown): boolean {
  if (typeof v === 'number') return v === 0;
  return typeof v === 'string' && /^\s*0+(?:\.0+)?\s*(?:ms|s|m|h|d)?\s*$/.test(v);
}
