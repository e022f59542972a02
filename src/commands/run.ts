import { loadConfig, type ConfigOverrides } from '../config/load.ts';
import { formatDuration } from '../config/durations.ts';
import { CollectorError, describeError } from '../errors.ts';
import { Collector, type RunSummary } from '../polling/collector.ts';
import { startMetrics, type RunningMetrics } from '../metrics/index.ts';
import { createSink } from '../sink/create-sink.ts';
import { StateStore } from '../state/state-store.ts';
import { collectorProgress, showProgress } from '../support/progress.ts';
import { EXIT, StopRequested, abortOnSignals, makeLogger, reportFatal } from './common.ts';
import { GaveUp, outputStallLimit, watchOnce } from './deadline.ts';

export interface RunArgs extends ConfigOverrides {
  config: string;
  once: boolean;
  /** `--timeout`: a `--once` run stops at this deadline (ms). */
  timeoutMs?: number;
  /** `--no-progress` sets it false; with --once, live lines are drawn only when stderr is a terminal anyway. */
  progress?: boolean;
  logLevel?: string;
}

/** `run -c FILE [--once [--timeout DURATION]]`: poll for ever, or collect what is there now and exit. */
export async function runCommand(args: RunArgs): Promise<number> {
  const log = makeLogger(args.logLevel);
  let config;
  try {
    config = loadConfig(args.config, args);
  } catch (err) {
    return reportFatal(err);
  }
  const sink = createSink(config, log);
  const store = new StateStore(config.state.path);
  let collector: Collector | undefined;
  let metrics: RunningMetrics | undefined;
  const ac = abortOnSignals(log, () => store.unlock(), () => (args.once ? EXIT.interrupted : EXIT.ok));
  let unwatch = () => {};
  const progressLine = () => {
    const p = collector?.progress() ?? { blobs: 0, records: 0 };
    return `${p.records} records in ${p.blobs} blobs acknowledged by ${sink.description}`;
  };
  try {
    store.lock();
    collector = new Collector({ config, sink, store, log });
    // After the lock (a second instance fails on it, not on the port); nothing listens unless metrics.listen is set.
    metrics = await startMetrics(collector, log);
    log.info('starting', { tenants: config.tenants.length, output: sink.description, state: config.state.path, once: args.once, ...(args.timeoutMs ? { timeout: formatDuration(args.timeoutMs) } : {}) });
    if (!args.once) {
      await collector.runForever(ac.signal);
      return EXIT.ok;
    }
    // A one-shot run always ends: at --timeout, or when the output takes nothing for a while.
    unwatch = watchOnce(ac, sink, { stallLimitMs: outputStallLimit(config.output.forward.ackTimeoutMs), timeoutMs: args.timeoutMs });
    // Live lines per feed while the backlog drains (stderr a terminal only); stopped before the summary.
    const progress = args.progress === false ? undefined : showProgress(() => collectorProgress(collector!));
    const s = await collector.runOnce(ac.signal).finally(() => progress?.stop());
    return report(s, collector, sink.description, config.state.path);
  } catch (err) {
    const reason = ac.signal.aborted ? ac.signal.reason : undefined;
    if (reason instanceof StopRequested) {
      // A service stopped by SIGTERM ends normally; an interrupted --once did not finish its job.
      if (!args.once) return EXIT.ok;
      process.stderr.write(`m365-forward: interrupted by ${reason.signalName}; ${progressLine()} and checkpointed; the rest is sent next time\n`);
      return EXIT.interrupted;
    }
    if (reason instanceof GaveUp) {
      process.stderr.write(`m365-forward: ${reason.message}; ${progressLine()} and checkpointed; the rest is sent next time\n`);
      return EXIT.failed;
    }
    if (err instanceof CollectorError && err.code === 'STATE_IO' && store.failure) {
      process.stderr.write(`m365-forward: ${progressLine()}, but their checkpoint could not be saved (${err.message}): they will be sent again by the next run\n`);
      return EXIT.failed;
    }
    return reportFatal(err);
  } finally {
    unwatch();
    await metrics?.close();
    await collector?.close().catch((e) => log.error('the checkpoint could not be saved at exit', { error: describeError(e) }));
    await sink.close();
    store.unlock();
  }
}

/** The one-shot summary on stderr, and the exit code: 0 only when everything available was delivered. */
function report(s: RunSummary, c: Collector, output: string, statePath: string): number {
  const lines: string[] = [];
  const problems: string[] = [];
  if (s.stateError) {
    process.stderr.write(`m365-forward: ${s.records} records in ${s.blobs} blobs acknowledged by ${output}, but their checkpoint could not be saved (${s.stateError}): they will be sent again by the next run\n`);
    return EXIT.failed;
  }
  lines.push(`delivered ${s.records} records in ${s.blobs} blobs from ${c.feeds.length} feeds to ${output}; checkpoint saved to ${statePath}`);
  if (s.late) lines.push(`${s.late} blob(s) were listed late by the API and delivered now`);
  if (s.deadLettered) problems.push(`${s.deadLettered} record(s) could not be sent and were written to ${c.deadLetters.file} (see \`m365-forward deadletter list\`)`);
  if (s.waiting) problems.push(`${s.waiting} blob(s) wait in the retry queue (see \`m365-forward state show\`)`);
  if (s.lost || s.gaps) problems.push(`${s.lost} blob(s) lost, ${s.gaps} gap(s) reported (see the log and \`state show\`)`);
  if (c.removedFeeds.length) {
    lines.push(
      `dropped from the state ${c.removedFeeds.length} feed(s) no longer in the config: ${c.removedFeeds
        .map((f) => `${f.key}${f.retryQueue ? ` (its retry queue held ${f.retryQueue} blob(s) created ${f.retryFrom} to ${f.retryTo}, never delivered)` : ''}`)
        .join(', ')}`,
    );
  }
  for (const t of s.tenantFailures) problems.push(`tenant ${t.tenant} was left out: ${t.auth ? 'credentials refused: ' : ''}${t.error}`);
  for (const e of s.errors) problems.push(e);
  process.stderr.write(lines.map((l) => `m365-forward: ${l}\n`).join('') + (problems.length ? `m365-forward: but:\n${problems.map((p) => `  - ${p}`).join('\n')}\n` : ''));
  // 3 when a tenant's credentials were refused (a person must act), even though the others were delivered.
  if (s.tenantFailures.some((t) => t.auth)) return EXIT.auth;
  return problems.length ? EXIT.failed : EXIT.ok;
}
