import { CollectorError, describeError } from '../errors.ts';
import { createLogger, type Level, type Logger } from '../support/logger.ts';

/** Exit codes: documented in README ("Exit codes"). */
export const EXIT = { ok: 0, failed: 1, config: 2, auth: 3, interrupted: 130 } as const;

export function makeLogger(level: string | undefined): Logger {
  const l = (['debug', 'info', 'warn', 'error'].includes(level ?? '') ? level : 'info') as Level;
  return createLogger({ level: l });
}

/** Prints an error for a person (stderr, one message, no stack for known errors) and picks the exit code. */
export function reportFatal(err: unknown): number {
  if (err instanceof CollectorError) {
    process.stderr.write(`m365-forward: ${err.message}\n`);
    if (err.code === 'CONFIG_INVALID') return EXIT.config;
    if (err.code === 'AUTH_FAILED' && err.fatal) return EXIT.auth;
    return EXIT.failed;
  }
  process.stderr.write(`m365-forward: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : describeError(err)}\n`);
  return EXIT.failed;
}

/** A stop signal's reason: the run ends cleanly, keeping what was acked. */
export class StopRequested extends CollectorError {
  constructor(readonly signalName: string) {
    super('SINK_ERROR', `stopped by ${signalName}`);
  }
}

/** How long a stop may take before the process exits regardless (DESIGN guarantee 6b: never stuck). */
export const STOP_GRACE_MS = 9_000;

/**
 * Turns SIGINT/SIGTERM into an abort: the collector stops taking new work, what is acked is
 * checkpointed, and the process exits. Whatever it waits for, it is gone within 10 s: after
 * STOP_GRACE_MS `onForcedExit` runs (release the lock) and the process exits. A second signal
 * exits at once the same way.
 */
export function abortOnSignals(log: Logger, onForcedExit: () => void, exitCode: () => number): AbortController {
  const ac = new AbortController();
  let count = 0;
  const force = (why: string) => {
    process.stderr.write(`m365-forward: ${why}; exiting now (what was acknowledged and checkpointed stays; the rest is sent again next time)\n`);
    try {
      onForcedExit();
    } finally {
      process.exit(exitCode());
    }
  };
  const onSignal = (sig: NodeJS.Signals) => {
    count++;
    if (count > 1) return force(`second ${sig}`);
    log.info('stopping', { signal: sig });
    ac.abort(new StopRequested(sig));
    setTimeout(() => force(`did not stop within ${STOP_GRACE_MS / 1000} s of ${sig}`), STOP_GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return ac;
}
