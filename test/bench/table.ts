/**
 * The bench's one table: each figure's median over its runs, every run's value, the target it is
 * held against, how busy each process was, and the command that reproduces the row. Pure.
 */

/** One figure of the table. */
export interface Row {
  /** Scenario number as the issue numbers them ("1".."5"). */
  scenario: string;
  figure: string;
  /** One value per run; NaN where a run produced none. */
  values: number[];
  unit: string;
  /** Digits after the point (default: 0 for values >= 100, else 2). */
  digits?: number;
  /** The target, as text ("≥ 25,000"), and whether the median meets it (undefined: no target). */
  target?: string;
  met?: boolean;
  /** Median share of one core each process was busy for, e.g. "coll 98% sim 21% fb 12%". */
  busy?: string;
  command: string;
}

/** Median of the finite values (mean of the middle two for an even count); NaN when there are none. */
export function median(values: readonly number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** A number for the table: thousands separators, `digits` decimals; "—" for NaN. */
export function fmt(n: number, digits?: number): string {
  if (!Number.isFinite(n)) return '—';
  const d = digits ?? (Math.abs(n) >= 100 ? 0 : 2);
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** "xx%" of one core for each process that ran: `busy({coll: 0.98, sim: 0.21})`. */
export function busy(shares: Record<string, number | undefined>): string {
  return Object.entries(shares)
    .filter(([, v]) => v !== undefined && Number.isFinite(v))
    .map(([k, v]) => `${k} ${Math.round(v! * 100)}%`)
    .join(' ');
}

/** Renders rows as a Markdown table (readable as plain text too). */
export function renderTable(rows: readonly Row[]): string {
  const header = ['#', 'figure', 'median', 'runs', 'target', 'CPU busy (of one core)', 'reproduce'];
  const body = rows.map((r, i) => {
    // The same runs give several figures: their CPU busy is written once, then dittoed.
    const prev = rows[i - 1];
    const sameRuns = prev !== undefined && prev.scenario === r.scenario && prev.busy === r.busy;
    const m = median(r.values);
    const verdict = r.met === undefined ? '' : r.met ? ' ✓' : ' ✗';
    return [
      r.scenario,
      r.figure,
      `${fmt(m, r.digits)} ${r.unit}`.trim(),
      r.values.length > 1 ? r.values.map((v) => fmt(v, r.digits)).join(' / ') : '1 run',
      r.target ? `${r.target}${verdict}` : '',
      r.busy ? (sameRuns ? '〃' : r.busy) : '',
      `\`${r.command}\``,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
