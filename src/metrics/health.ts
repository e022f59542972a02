/**
 * The /healthz decision (issue 8, "Metrics and health"): pure, from numbers read elsewhere
 * (collector-view.ts), so it is tested without a collector, a socket or a clock.
 */

/** How one feed is doing, as /healthz judges it. */
export interface FeedProgress {
  /** `tenant/contentType`, as in the state file and the logs. */
  feed: string;
  /**
   * Time since the feed last made progress (a complete poll: FeedPoller.counters.progressAt).
   * A feed whose tenant is not started has made none since the process started.
   */
  idleMs: number;
  /** False while the tenant is left out (credentials refused, API unreachable) or still starting. */
  tenantStarted: boolean;
  /** Why it may be stuck: the tenant's start error, or the feed's last error (never a secret). */
  error?: string;
}

/** How the output is doing: what ForwardSink.health() says. */
export interface OutputProgress {
  /** The output's description (`forward tcp://127.0.0.1:24224`). */
  output: string;
  /** Time entries have waited with no ack (0 when nothing waits: an idle output is not stalled). */
  stalledMs: number;
  lastError?: string;
}

/** One reason /healthz gives for a 503. */
export type StallReason =
  | { feed: string; idleSeconds: number; tenantStarted?: false; error?: string }
  | { output: string; noAckSeconds: number; lastError?: string };

/** The /healthz body: `{"status":"ok"}`, or what is stalled and for how long. */
export type Health = { status: 'ok' } | { status: 'stalled'; stallAfterSeconds: number; reasons: StallReason[] };

/** A feed (or the output) is stalled once it has made no progress for longer than `stallAfterMs` (as status.ts says `stalled`). */
export function isStalled(idleMs: number, stallAfterMs: number): boolean {
  return idleMs > stallAfterMs;
}

/**
 * `stalled` when any feed has made no progress, or the output has had entries waiting without an
 * ack, for longer than `stallAfterMs`; every such feed and the output are named with how long.
 * A feed of a tenant that could not start counts like any other feed that makes no progress.
 */
export function decideHealth(feeds: readonly FeedProgress[], output: OutputProgress | undefined, stallAfterMs: number): Health {
  const reasons: StallReason[] = [];
  for (const f of feeds) {
    if (!isStalled(f.idleMs, stallAfterMs)) continue;
    reasons.push({
      feed: f.feed,
      idleSeconds: Math.round(f.idleMs / 1000),
      ...(f.tenantStarted ? {} : { tenantStarted: false as const }),
      ...(f.error ? { error: f.error } : {}),
    });
  }
  if (output && isStalled(output.stalledMs, stallAfterMs)) {
    reasons.push({ output: output.output, noAckSeconds: Math.round(output.stalledMs / 1000), ...(output.lastError ? { lastError: output.lastError } : {}) });
  }
  return reasons.length === 0 ? { status: 'ok' } : { status: 'stalled', stallAfterSeconds: Math.round(stallAfterMs / 1000), reasons };
}
