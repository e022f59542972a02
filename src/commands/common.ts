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

/**
 * Turns SIGINT/SIGTERM into an abort: the collector stops taking new work, what is acked is
 * already checkpointed, and the process exits. A second signal exits at once.
 */
export function abortOnSignals(log: Logger): AbortController {
  const ac = new AbortController();
  let count = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    count++;
    if (count > 1) process.exit(130);
    log.info('stopping', { signal: sig });
    ac.abort(new CollectorError('SINK_ERROR', `stopped by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return ac;
}
