import { formatDuration } from '../config/durations.ts';
import { CollectorError } from '../errors.ts';
import type { Sink, SinkHealth } from '../sink/types.ts';

/**
 * When `run --once` gives up (pure decisions; run.ts carries them out). A one-shot run must end:
 * - at `--timeout`, whatever it is doing;
 * - when the output has taken nothing for `stallLimitMs` while records wait (the shipper is down
 *   or does not ack), even without --timeout, so a cron job never hangs on a dead Fluent Bit.
 * The message names what it was waiting for.
 */
export function outputStallLimit(ackTimeoutMs: number): number {
  return Math.max(10_000, 2 * ackTimeoutMs);
}

/** What a one-shot run is waiting for, as the object of "waiting for …". */
export function waitingFor(h: SinkHealth, output: string): string {
  const secs = Math.round(h.stalledMs / 1000);
  if (h.waiting && output === 'stdout') return `stdout to take the records (nothing taken for ${secs} s; is its reader stuck?)`;
  if (h.waiting) return `an ack from ${output} (none for ${secs} s${h.lastError ? `; ${h.lastError}` : ''})`;
  return 'the Management API (listing or downloading content)';
}

/** Why a one-shot run gives up on its output, or undefined while it is making progress. */
export function stallVerdict(h: SinkHealth, output: string, stallLimitMs: number): string | undefined {
  if (!h.waiting || h.stalledMs < stallLimitMs) return undefined;
  const secs = Math.round(h.stalledMs / 1000);
  if (output === 'stdout') return `stdout has taken nothing for ${secs} s (is its reader stuck?)`;
  return `no ack from ${output} for ${secs} s${h.lastError ? ` (${h.lastError})` : ''}`;
}

/** A one-shot run that gave up (deadline, or an output that takes nothing): exit 1 with the reason. */
export class GaveUp extends CollectorError {
  constructor(message: string) {
    super('SINK_ACK_TIMEOUT', message);
  }
}

/**
 * Watches a one-shot run: aborts `ac` with GaveUp when the output stalls for `stallLimitMs`, or at
 * `timeoutMs`. Returns the function that stops watching.
 */
export function watchOnce(ac: AbortController, sink: Sink, opts: { stallLimitMs: number; timeoutMs?: number; hint?: string }): () => void {
  const hint = opts.hint ? `; ${opts.hint}` : '';
  const poll = setInterval(() => {
    const v = stallVerdict(sink.health(), sink.description, opts.stallLimitMs);
    if (v) ac.abort(new GaveUp(`gave up: ${v}${hint}`));
  }, 1000);
  const deadline =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => ac.abort(new GaveUp(`--timeout ${formatDuration(opts.timeoutMs!)} reached while waiting for ${waitingFor(sink.health(), sink.description)}`)), opts.timeoutMs);
  return () => {
    clearInterval(poll);
    clearTimeout(deadline);
  };
}
