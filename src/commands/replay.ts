/**
 * `replay -c FILE --tenant NAME [--content-type CT] --from TIME [--to TIME]` (issue 8, "Replay"):
 * lists the content the API made available in a time range and sends it again, through the
 * configured output, without touching the live checkpoint.
 *
 * How it stays off the live state: it composes the same parts the collector is built from (one
 * tenant runtime with its request budget, one FeedPoller per content type) around checkpoints
 * that live in memory only (FeedCheckpoint.create with a journal that writes nothing), with their
 * origin at --from, the baseline listing marked done and the sweep off. It never opens the state
 * file, its journal or its lock: it may run while `run` runs. Records it cannot send go to a
 * dead-letter file of its own (see `replayDeadLetterPath`).
 */
import { loadConfig, type ConfigOverrides } from '../config/load.ts';
import { formatDuration } from '../config/durations.ts';
import type { Config, TenantConfig } from '../config/schema.ts';
import { CollectorError, describeError } from '../errors.ts';
import type { ContentType } from '../management-api/content-types.ts';
import { isoMs, parseInstant } from '../management-api/dates.ts';
import { RETENTION_SAFETY_MS } from '../management-api/limits.ts';
import { FeedCheckpoint, retentionFloor } from '../polling/checkpoint.ts';
import { BLOBS_PER_DOWNLOAD_SLOT, FeedPoller, type PollResult } from '../polling/feed-poller.ts';
import { connectTenant, createTenantRuntime, type TenantRuntime } from '../polling/tenant-runtime.ts';
import { createSink, wireFormat } from '../sink/create-sink.ts';
import { createRouter } from '../sink/route.ts';
import type { Sink } from '../sink/types.ts';
import { DeadLetterFile, deadLetterPath } from '../state/dead-letter.ts';
import { feedKey } from '../state/state-store.ts';
import type { Logger } from '../support/logger.ts';
import { feedProgress, noProgress, showProgress, type ProgressDisplay } from '../support/progress.ts';
import { Semaphore } from '../support/semaphore.ts';
import { EXIT, StopRequested, abortOnSignals, makeLogger, reportFatal } from './common.ts';
import { GaveUp, outputStallLimit, watchOnce } from './deadline.ts';

export interface ReplayArgs extends ConfigOverrides {
  config: string;
  /** `--tenant`: a tenant `name` from the config. */
  tenant: string;
  /** `--content-type`: one of the tenant's content types (default: all of them). */
  contentType?: string;
  /** `--from`, as typed. */
  from: string;
  /** `--to`, as typed (default: the API's now). */
  to?: string;
  /** `--timeout`: stop at this deadline (ms). */
  timeoutMs?: number;
  /** `--no-progress` sets it false; live lines are drawn only when stderr is a terminal anyway. */
  progress?: boolean;
  logLevel?: string;
}

/** A range from the command line, in ms epoch, whole seconds; `to` undefined means the API's now. */
export interface ReplayRange {
  from: number;
  to?: number;
}

/** What `--from`/`--to` accept, for messages and --help. */
export const TIME_FORMS = 'ISO 8601, UTC unless it names an offset: 2026-05-01, 2026-05-01T13:00, 2026-05-01T13:00:00Z, 2026-05-01T15:00:00+02:00';

/**
 * A --from at the API's retention limit must still be inside it when its window is listed, a
 * moment after the check (the limit moves with the clock): the check keeps this much margin.
 * The collector's own RETENTION_SAFETY_MS (10 min) then still separates it from the API's limit.
 */
export const REPLAY_START_SLACK_MS = 60_000;

/**
 * Parses --from and --to with the one time parser (management-api/dates.ts). The listing has
 * second precision (reference management-api.md §4 "Time formats"), so fractions of a second are
 * dropped: the range is [from, to) to the second, as the API filters contentCreated (§3.4:
 * inclusive start, exclusive end). Returns a usage problem as a string.
 */
export function parseReplayRange(fromText: string, toText: string | undefined): ReplayRange | string {
  const parse = (flag: string, text: string): number | string => {
    const t = parseInstant(text);
    return t === undefined ? `${flag} ${JSON.stringify(text).slice(0, 60)} is not a date and time; use ${TIME_FORMS}` : t.sec * 1000;
  };
  const from = parse('--from', fromText);
  if (typeof from === 'string') return from;
  if (toText === undefined) return { from };
  const to = parse('--to', toText);
  if (typeof to === 'string') return to;
  if (from >= to) return `--from ${isoSec(from)} must be before --to ${isoSec(to)}`;
  return { from, to };
}

/**
 * The oldest --from a replay accepts at `apiNow` (API time): what the API still lists (7 days,
 * less the collector's safety margin, checkpoint.ts retentionFloor) less REPLAY_START_SLACK_MS,
 * rounded up to the second the listing counts in.
 */
export function oldestReplayStart(apiNow: number): number {
  return Math.ceil((retentionFloor(apiNow) + REPLAY_START_SLACK_MS) / 1000) * 1000;
}

/**
 * The range to list, decided in the API's time: refused (a usage problem, as a string) when it
 * starts before what the API keeps, naming the exact limit; `to` defaults to, and is cut at, the
 * API's now (content cannot be created later).
 */
export function decideReplayRange(range: ReplayRange, apiNow: number): { from: number; to: number; cut: boolean } | string {
  const oldest = oldestReplayStart(apiNow);
  if (range.from < oldest) {
    return `--from ${isoSec(range.from)} is older than the Management API keeps content: the oldest --from allowed now is ${isoSec(oldest)} (7 days back on the API's clock, less ${formatDuration(RETENTION_SAFETY_MS + REPLAY_START_SLACK_MS)} of margin; it moves forward with the clock)`;
  }
  const now = Math.floor(apiNow / 1000) * 1000;
  const to = range.to === undefined ? now : Math.min(range.to, now);
  if (range.from >= to) return `--from ${isoSec(range.from)} is not before the API's now (${isoSec(now)}): nothing can have been created in that range yet`;
  return { from: range.from, to, cut: range.to !== undefined && range.to > now };
}

/**
 * Where a replay puts the records it cannot send: `<state>.replay.deadletter.ndjson`, beside the
 * live `<state>.deadletter.ndjson` but never in it. The live file is rewritten by `deadletter
 * resend`, which takes the state's lock to do so; a replay holds no lock, so its appends could be
 * lost under such a rewrite. And the records a replay dead-letters were in all likelihood
 * dead-lettered by the live run already: appending them would list them twice. This file is the
 * dead-letter file of the state path `<state>.replay`, so the usual command sends them:
 * `deadletter resend -c FILE --state <state>.replay`.
 */
export function replayDeadLetterPath(statePath: string): string {
  return deadLetterPath(replayStatePath(statePath));
}

/** The `--state` under which `deadletter resend` finds a replay's dead letters. */
export function replayStatePath(statePath: string): string {
  return `${statePath}.replay`;
}

/** A configured tenant by name, or a usage problem naming the configured ones. */
export function pickTenant(config: Config, name: string): TenantConfig | string {
  const t = config.tenants.find((x) => x.name === name);
  return t ?? `unknown --tenant ${JSON.stringify(name).slice(0, 60)}: the config names ${config.tenants.map((x) => x.name).join(', ')}`;
}

/** The content types to replay: the one asked for (it must be one the tenant collects), else all of the tenant's. */
export function pickContentTypes(tenant: TenantConfig, asked: string | undefined): ContentType[] | string {
  if (asked === undefined) return [...tenant.contentTypes];
  const ct = tenant.contentTypes.find((c) => c === asked);
  return ct ? [ct] : `--content-type ${asked} is not collected for tenant ${tenant.name}: its content types are ${tenant.contentTypes.join(', ')}`;
}

/** `replay`: see the file header. Exit codes: 0 every record acknowledged, 1 something was not sent, 2 usage or config, 3 credentials refused, 130 interrupted. */
export async function replayCommand(args: ReplayArgs): Promise<number> {
  const usage = (msg: string) => {
    process.stderr.write(`m365-forward: ${msg}\n`);
    return EXIT.config;
  };
  const range = parseReplayRange(args.from, args.to);
  if (typeof range === 'string') return usage(range);
  const log = makeLogger(args.logLevel);
  let config: Config;
  try {
    config = loadConfig(args.config, args);
  } catch (err) {
    return reportFatal(err);
  }
  const tenant = pickTenant(config, args.tenant);
  if (typeof tenant === 'string') return usage(tenant);
  const types = pickContentTypes(tenant, args.contentType);
  if (typeof types === 'string') return usage(types);

  const sink = createSink(config, log);
  const rt = createTenantRuntime(tenant, config, { log });
  // No lock to release on a forced exit: a replay holds none.
  const ac = abortOnSignals(log, () => {}, () => EXIT.interrupted);
  const unwatch = watchOnce(ac, sink, { stallLimitMs: outputStallLimit(config.output.forward.ackTimeoutMs), timeoutMs: args.timeoutMs });
  let feeds: FeedPoller[] = [];
  let progress: ProgressDisplay = noProgress;
  const sent = () => feeds.reduce((a, f) => ({ blobs: a.blobs + f.checkpoint.s.blobsDelivered, records: a.records + f.checkpoint.s.recordsDelivered }), { blobs: 0, records: 0 });
  try {
    await connectTenant(rt, ac.signal, config.polling.maxAttempts, log);
    const decided = decideReplayRange(range, rt.clock.now());
    if (typeof decided === 'string') return usage(decided);
    const { from, to } = decided;
    log.info('replay starting', { tenant: tenant.name, contentTypes: types, from: isoSec(from), to: isoSec(to), output: sink.description, ...(decided.cut ? { note: '--to is after the API\'s now: cut at now' } : {}) });
    feeds = replayFeeds(config, rt, types, sink, from, log);
    progress = args.progress === false ? noProgress : showProgress(() => feeds.map((f) => feedProgress(f, { blobs: f.checkpoint.s.blobsDelivered, records: f.checkpoint.s.recordsDelivered }, to)));
    const settled = await Promise.allSettled(
      feeds.map(async (f) => {
        const r = await f.poll(ac.signal, to);
        if (r.stopRun) ac.abort(r.error);
        return r;
      }),
    ).finally(() => progress.stop());
    const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed) throw failed.reason;
    return report(settled.map((x) => (x as PromiseFulfilledResult<PollResult>).value), feeds, { tenant, from, to, cut: decided.cut, output: sink.description, deadLetters: replayDeadLetterPath(config.state.path), statePath: config.state.path });
  } catch (err) {
    progress.stop();
    const reason = ac.signal.aborted ? ac.signal.reason : undefined;
    const s = sent();
    const sofar = `${s.records} records in ${s.blobs} blobs were acknowledged by ${sink.description} before that`;
    if (reason instanceof StopRequested) {
      process.stderr.write(`m365-forward: replay interrupted by ${reason.signalName}; ${sofar}; run the replay again to send the whole range\n`);
      return EXIT.interrupted;
    }
    if (reason instanceof GaveUp || reason instanceof CollectorError) {
      process.stderr.write(`m365-forward: replay stopped: ${reason.message}; ${sofar}\n`);
      return EXIT.failed;
    }
    return reportFatal(err);
  } finally {
    unwatch();
    rt.close();
    await sink.close();
  }
}

/**
 * One FeedPoller per content type, as the collector builds them for a tenant (one download pool
 * and one request budget shared by the tenant's feeds), but each around a checkpoint in memory:
 * - its journal writes nothing, so no state file is created or changed;
 * - its origin is --from (the look-back is `apiNow - from`, and the retention check passed), so
 *   the overlap never lists before it;
 * - `baselined` is set: the one-off listing of the retention before the origin is the live feed's
 *   business (checkpoint.ts baselineWindows), not a replay's;
 * - the sweep is off (polling.sweep_interval 0): a replay lists its range once.
 */
function replayFeeds(config: Config, rt: TenantRuntime, types: ContentType[], sink: Sink, from: number, log: Logger): FeedPoller[] {
  const replayConfig: Config = { ...config, polling: { ...config.polling, sweepIntervalMs: 0 } };
  const pool = new Semaphore(config.polling.concurrency);
  const blobs = new Semaphore(config.polling.concurrency * BLOBS_PER_DOWNLOAD_SLOT);
  const router = createRouter(config.routing.tagTemplate, config.routing.workloadTables);
  const format = wireFormat(config);
  const deadLetters = new DeadLetterFile(replayDeadLetterPath(config.state.path));
  const apiNow = rt.clock.now();
  const replayLog = log.child({ replay: true });
  return types.map((contentType) => {
    const checkpoint = FeedCheckpoint.create(feedKey(rt.tenant.name, contentType), rt.tenant.tenantId, apiNow, apiNow - from, () => {});
    checkpoint.s.baselined = true;
    return new FeedPoller({ config: replayConfig, tenant: rt.tenant, contentType, api: rt.api, clock: rt.clock, sink, format, router, pool, blobs, checkpoint, deadLetters, log: replayLog });
  });
}

/** What was sent, on stderr (stdout may carry the records themselves), and the exit code: 0 only when every record was acknowledged. */
function report(
  results: PollResult[],
  feeds: FeedPoller[],
  o: { tenant: TenantConfig; from: number; to: number; cut: boolean; output: string; deadLetters: string; statePath: string },
): number {
  const total = results.reduce((a, r) => ({ blobs: a.blobs + r.blobs, records: a.records + r.records, dead: a.dead + r.deadLettered }), { blobs: 0, records: 0, dead: 0 });
  const lines = [
    `m365-forward: replayed tenant ${o.tenant.name}, content created from ${isoSec(o.from)} to ${isoSec(o.to)}${o.cut ? ' (--to was cut at the API\'s now)' : ''}:`,
    ...feeds.map((f, i) => `  ${f.deps.contentType}: ${results[i]!.records} records in ${results[i]!.blobs} blobs`),
    `m365-forward: sent ${total.records} records in ${total.blobs} blobs to ${o.output}${total.records ? ', every one acknowledged' : ''}; the live state ${o.statePath} was not touched`,
  ];
  const problems: string[] = [];
  results.forEach((r, i) => {
    const ct = feeds[i]!.deps.contentType;
    if (r.error) problems.push(`${ct}: the range could not be listed completely (${describeError(r.error)})`);
    if (r.parked) {
      const ids = [...feeds[i]!.checkpoint.retry.values()].map((e) => e.contentId);
      problems.push(`${ct}: ${r.parked} blob(s) could not be fetched and were not sent (${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''}); run the replay again`);
    }
    if (r.lost || r.gaps.length) problems.push(`${ct}: ${r.lost} blob(s) lost, ${r.gaps.length} gap(s) (see the log)`);
  });
  if (total.dead) problems.push(`${total.dead} record(s) could not be sent and were written to ${o.deadLetters} (send them with \`m365-forward deadletter resend -c FILE --state ${replayStatePath(o.statePath)}\`)`);
  process.stderr.write(lines.join('\n') + '\n' + (problems.length ? `m365-forward: but:\n${problems.map((p) => `  - ${p}`).join('\n')}\n` : ''));
  return problems.length ? EXIT.failed : EXIT.ok;
}

/** An instant for messages, to the second: 2026-05-01T13:00:00Z. */
function isoSec(ms: number): string {
  return isoMs(ms).replace(/\.\d{3}Z$/, 'Z');
}
