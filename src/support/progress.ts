/**
 * Live progress on a terminal (issue 8, "Progress on a terminal"): while `run --once` or `replay`
 * drains a backlog, one line per feed on stderr, redrawn in place: blobs and records done,
 * records a second, and the lag still to cover.
 *
 * Two parts:
 * - pure: `renderProgressLines` turns feed snapshots into lines, `redrawFrame` into the bytes that
 *   replace the previous frame (ANSI cursor movement), `RateMeter` the records a second;
 * - I/O: `showProgress` samples the counters a few times a second and writes frames to stderr. It
 *   does nothing at all when stderr is not a terminal (a pipe, a file, journald): there the JSON log
 *   lines stay exactly as they are, with no escape sequence among them.
 *
 * It reads counters the collector keeps anyway (each checkpoint's blobs/records delivered, its
 * cursor): no hook in the record path, nothing is slowed down when no one watches.
 */
import type { Collector } from '../polling/collector.ts';
import type { FeedPoller } from '../polling/feed-poller.ts';
import { feedKey } from '../state/state-store.ts';

/** One feed's progress at one moment: what the renderer shows. */
export interface FeedProgress {
  /** `tenant/ContentType`. */
  feed: string;
  /** Blobs done (acknowledged) by this process. */
  blobs: number;
  /** Records acknowledged by this process. */
  records: number;
  /** Records a second over the last few seconds; undefined until there is enough to measure. */
  recordsPerSecond?: number;
  /** How much of the range is still ahead of the feed's cursor (ms); undefined when unknown. */
  lagMs?: number;
}

/** Redraws a second, at most: often enough to look live, rarely enough to cost nothing. */
export const PROGRESS_INTERVAL_MS = 250;

/** The span records a second are measured over: long enough to smooth bursts of big blobs. */
export const RATE_WINDOW_MS = 5_000;

const ESC = '\u001b[';

/** `12345` → `12,345` (fixed locale: the same output on every machine). */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A lag for a person: `42s`, `12m05s`, `3h12m`, `2d03h`. */
export function formatLag(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor((s % 86400) / 3600))}h`;
}

/**
 * One line per feed, feed names padded to the longest so the columns line up; each line cut to
 * `width - 1` characters when the terminal's width is known, so no line wraps (a wrapped line
 * would make the next redraw move the cursor up too few lines).
 */
export function renderProgressLines(feeds: readonly FeedProgress[], width?: number): string[] {
  const nameWidth = Math.max(0, ...feeds.map((f) => f.feed.length));
  return feeds.map((f) => {
    const rate = f.recordsPerSecond === undefined ? '-' : formatCount(f.recordsPerSecond);
    const lag = f.lagMs === undefined ? '-' : formatLag(f.lagMs);
    const line = `${f.feed.padEnd(nameWidth)}  ${formatCount(f.blobs)} blobs  ${formatCount(f.records)} records  ${rate} records/s  lag ${lag}`;
    return width && width > 1 && line.length > width - 1 ? line.slice(0, width - 1) : line;
  });
}

/**
 * The bytes that replace a frame of `previous` lines (the cursor below it) with `lines`: move to
 * the start of the frame's first line (CSI n F), clear from there to the end of the screen (CSI J),
 * write the new lines. The cursor ends below the new frame, where the next one starts from.
 */
export function redrawFrame(lines: readonly string[], previous: number): string {
  const up = previous > 0 ? `${ESC}${previous}F` : '';
  return `${up}${ESC}J${lines.map((l) => `${l}\n`).join('')}`;
}

/** Erases a frame of `lines` lines (the cursor below it) and leaves the cursor where it began. */
export function eraseFrame(lines: number): string {
  return lines > 0 ? `${ESC}${lines}F${ESC}J` : '';
}

/** Records a second from samples of a growing counter, over the last `windowMs`. Pure but for its samples. */
export class RateMeter {
  readonly #samples: { at: number; count: number }[] = [];
  constructor(private readonly windowMs = RATE_WINDOW_MS) {}

  /** Adds a sample (`at` in ms, any monotonic clock) and returns the rate, or undefined below a second of samples. */
  sample(at: number, count: number): number | undefined {
    const s = this.#samples;
    s.push({ at, count });
    // Keep one sample at or beyond the window's start, so the window is always fully covered.
    while (s.length > 2 && s[1]!.at <= at - this.windowMs) s.shift();
    const first = s[0]!;
    const span = at - first.at;
    if (span < 1000) return undefined;
    return Math.max(0, ((count - first.count) * 1000) / span);
  }
}

/** A running display: `stop()` draws the last frame (it stays on screen) and lets go of stderr. */
export interface ProgressDisplay {
  /** Whether frames are being drawn (false when stderr is not a terminal). */
  readonly active: boolean;
  stop(): void;
}

/** What `showProgress` writes to: stderr, or a test's stand-in. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write: NodeJS.WriteStream['write'];
}

/** A display that draws nothing (stderr is not a terminal, or progress was turned off). */
export const noProgress: ProgressDisplay = { active: false, stop: () => {} };

/**
 * Draws `source()` as one line per feed on `stream` (stderr) every PROGRESS_INTERVAL_MS until
 * stopped; nothing at all unless `stream.isTTY` (and TERM is not `dumb`). Anything else written to
 * the stream meanwhile (the JSON log lines, a final summary) is put above the frame: the frame is
 * erased first and drawn again below it, so log lines are never overwritten. This is the one
 * reason the stream's `write` is wrapped while the display runs (as log-update and listr do); the
 * original is put back by `stop()`.
 */
export function showProgress(
  source: () => FeedProgress[],
  opts: { stream?: ProgressStream; intervalMs?: number; now?: () => number; env?: NodeJS.ProcessEnv } = {},
): ProgressDisplay {
  const stream = opts.stream ?? process.stderr;
  const env = opts.env ?? process.env;
  if (!stream.isTTY || env.TERM === 'dumb') return noProgress;
  const now = opts.now ?? (() => performance.now());
  const meters = new Map<string, RateMeter>();
  const original = stream.write;
  const raw = (text: string) => (original as (s: string) => boolean).call(stream, text);
  let drawn = 0;
  let stopped = false;

  const frame = (): string[] => {
    const at = now();
    const feeds = source().map((f) => {
      let m = meters.get(f.feed);
      if (!m) meters.set(f.feed, (m = new RateMeter()));
      return { ...f, recordsPerSecond: m.sample(at, f.records) };
    });
    return renderProgressLines(feeds, stream.columns);
  };
  const redraw = () => {
    const lines = frame();
    if (lines.length === 0 && drawn === 0) return; // no feed yet: nothing to draw or erase
    raw(redrawFrame(lines, drawn));
    drawn = lines.length;
  };

  // Others' writes land above the frame. A write that ends a line gets the frame back at once; a
  // partial line is left alone until the next tick completes it.
  stream.write = function (this: unknown, ...args: unknown[]): boolean {
    if (drawn > 0) {
      raw(eraseFrame(drawn));
      drawn = 0;
    }
    const ok = (original as (...a: unknown[]) => boolean).apply(stream, args);
    const chunk = args[0];
    const endsLine = typeof chunk === 'string' ? chunk.endsWith('\n') : chunk instanceof Uint8Array && chunk[chunk.length - 1] === 10;
    if (!stopped && endsLine) redraw();
    return ok;
  } as NodeJS.WriteStream['write'];

  redraw();
  const timer = setInterval(redraw, opts.intervalMs ?? PROGRESS_INTERVAL_MS);
  timer.unref();
  return {
    active: true,
    stop: () => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      stream.write = original;
      redraw(); // the final counts stay on screen, above whatever is printed next
    },
  };
}

/** One feed's snapshot from its poller: `done` is what this process delivered, `end` where its range ends (API time; default now). */
export function feedProgress(f: FeedPoller, done: { blobs: number; records: number }, end?: number): FeedProgress {
  const to = end ?? f.deps.clock.now();
  return { feed: feedKey(f.deps.tenant.name, f.deps.contentType), blobs: done.blobs, records: done.records, lagMs: Math.max(0, to - f.checkpoint.cursor) };
}

/** The progress of a collector's feeds (`run --once`): delivered since this process started, lag to the API's now. */
export function collectorProgress(c: Collector): FeedProgress[] {
  return c.feeds.map((f) => feedProgress(f, c.feedProgress(f)));
}
