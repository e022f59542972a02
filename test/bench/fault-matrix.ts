/**
 * `npm run faults`: the fault table. What each failure does to delivery, measured end to end with
 * separate processes, the way an operator meets it: a `simulate` process serving synthetic content
 * with one kind of fault armed, the collector run as `node --import tsx src/cli.ts run -c CFG
 * --once` (again until it exits 0 or a bound is reached), and an acking Forward receiver on
 * loopback (test/helpers/forward-receiver.ts) counting what arrived.
 *
 * Prints one markdown table (stdout), for the closing note of the reliability issue:
 *   fault · records served · delivered (unique ids) · duplicates · lost (reported) · dead-lettered · exit code · notes
 * then how each row was staged, the command that reproduces it, the machine and the time taken.
 * Progress goes to stderr. Nothing is asserted: a row that loses records shows the loss.
 *
 * Where the numbers come from:
 * - records served: the simulator's ready line (`records`);
 * - delivered / duplicates: the receiver, audit tags only (`cloud.office365.management.*`), unique
 *   and total record `Id`s (synthetic Ids are unique, so unique == served means every record
 *   served arrived: the collector never invents records);
 * - lost (reported) and dead-lettered: the collector's own report, `state show` (per feed `lost`,
 *   `gaps`, `dead-lettered`, `retry queue`), cross-checked with the last status record of each feed
 *   the receiver got (README "Status records");
 * - exit code: every run in order (`killed` for a SIGKILL).
 *
 * Receiver rows (slow acks, down, restarting) put a small TCP relay, {@link ReceiverFront}, between
 * the collector and the same acking receiver: it delays the receiver's answers (acks), refuses
 * connections for a while, or cuts every connection and stops listening, which is what the
 * collector sees of a slow, absent or restarting Fluent Bit. Frames that reached the receiver
 * before a cut count as received even if their ack was lost, as with a Fluent Bit that buffered a
 * frame and died before acking it.
 *
 * Options: `--seed N` (default 7: the simulator's data and the SIGKILL delays), `--only a,b`
 * (rows by their fault name), `--list` (row names). Leaves no process and no file behind (each row
 * works in its own temporary folder; SIGINT/SIGTERM stop every child first).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { StateStore } from '../../src/state/state-store.ts';
import { startForwardReceiver } from '../helpers/forward-receiver.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const cliPath = path.join(repoRoot, 'src', 'cli.ts');
const AUDIT_TAG_PREFIX = 'cloud.office365.management.';
const STATUS_TAG = 'm365forward.status';
/** One collector run never takes longer than this (`--timeout`); a hard kill 30 s later if it hangs anyway. */
const RUN_TIMEOUT = '2m';
const RUN_KILL_MS = 150_000;

// =============================================================================================
// The rows (pure data)

/** What the receiver does in a row. */
export type ReceiverMode =
  /** The acking receiver, directly. */
  | { kind: 'acking' }
  /** Every answer (ack) held back `delayMs` (a Fluent Bit under backpressure). */
  | { kind: 'slow-ack'; delayMs: number }
  /** Nothing listens for the first `downMs` of the run, then the receiver starts on that port. */
  | { kind: 'down'; downMs: number }
  /** Once `atFraction` of the records arrived, every connection is cut and nothing listens for `downMs`. */
  | { kind: 'restart'; atFraction: number; downMs: number };

/** One row of the table: how its fault is staged. */
export interface RowSpec {
  /** The first column. */
  fault: string;
  /** `simulate` flags besides --seed and --write-config (faults, records, ...). */
  simulate: string[];
  /** Config keys an operator would change, dotted paths into the written YAML. */
  config?: Record<string, unknown>;
  receiver: ReceiverMode;
  /** Why it is staged this way: printed under the table. */
  staging: string;
  /** Runs allowed before giving up (kills not counted). */
  maxRuns: number;
  /** Between runs, parked blobs may be made due (as if their retry delay had passed). */
  makeDue?: boolean;
  /** SIGKILL the collector this many times, each at a random moment while records arrive. */
  kills?: number;
  /** Rows that stress the output: also report how many records the receiver got per record served. */
  receiverLimit?: number;
  /** CLI commands run once before the first collector run (`-c CFG` is added), as an operator would. */
  before?: string[][];
  /** `run --timeout` for this row (default RUN_TIMEOUT). */
  runTimeout?: string;
  /**
   * Bound by waiting, not by CPU (acks held back for seconds): runs beside the other rows, which
   * keeps the matrix under about 5 minutes without changing what the row measures.
   */
  background?: boolean;
}

const DEFAULT_RECORDS = '2000';

/**
 * Every simulator fault kind (src/simulator/fault-spec.ts), each where it hurts most with a count
 * that makes it matter, then the receiver and process faults. Counts: a fault hits the next COUNT
 * requests of its route; the collector downloads 4 blobs at once (polling.concurrency), so COUNT 8
 * on `blob` is 4 downloads hit twice each, and 20 is 4 downloads hit polling.max_attempts (5) times,
 * which parks them.
 */
export const ROWS: readonly RowSpec[] = [
  {
    fault: '429',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', '429@blob:8'],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: '8 blob download requests throttled (HTTP 429 AF429, no Retry-After: the API documents none); with 4 downloads at once each meets it about twice, below polling.max_attempts (5), so it waits out the throttling backoff (5 s doubling, jittered)',
  },
  {
    fault: '403-AF429',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', '403-AF429@content:10'],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: "10 content listing requests throttled with 403 AF429 (the API's documented answer); the 5 feeds list at once, so each feed's listing is refused about twice, below polling.max_attempts (5)",
  },
  {
    fault: '500',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', '500@blob:20'],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: '20 blob download requests answered HTTP 500 AF50000; with 4 downloads at once, a download that meets it polling.max_attempts (5) times is parked in the retry queue; before the next run the retry entries are made due (as if the 1-60 min retry delay had passed)',
  },
  {
    fault: '503',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', '503@content:25'],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: "the content listings answered HTTP 503 AF50005 25 times: the 5 feeds list at once, so each listing call is refused polling.max_attempts (5) times and every feed's poll fails with its cursor kept; the next run lists again",
  },
  {
    fault: 'reset',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', 'reset@blob:12'],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: '12 blob download requests have their connection destroyed before any answer (about 3 per download in progress, below polling.max_attempts)',
  },
  {
    fault: 'truncate',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', 'truncate@blob:12'],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: '12 blob download requests cut after half the promised Content-Length (about 3 per download in progress, below polling.max_attempts)',
  },
  {
    fault: 'slow',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', 'slow@blob:8', '--slow-ms', '7000'],
    config: { 'polling.request_timeout': '5s' },
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: '8 blob download requests answered only after 7 s while polling.request_timeout is 5s: each times out and is retried (about twice per download in progress, below polling.max_attempts)',
  },
  {
    fault: 'expire-token',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', 'expire-token@blob:8'],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: '8 blob download requests refused with 401 as if the token had expired (about twice per download in progress): a fresh token, then a retry',
  },
  {
    fault: '404',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', '404@blob:6'],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: '6 blob download requests answered a bare 404 (a proxy or CDN edge, no AF code): each such blob is parked as not found (lost only after 3 such answers); before the next run the retry entries are made due',
  },
  {
    fault: 'html',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', 'html@blob:12'],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: '12 blob download requests answered HTTP 502 with an nginx HTML page (a proxy in front of the API; about 3 per download in progress, below polling.max_attempts)',
  },
  {
    fault: 'not-array',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', 'not-array@blob:4'],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: '4 blobs served as HTTP 200 {"value":[...]} instead of an array: parked at once; before the next run the retry entries are made due',
  },
  {
    fault: 'invalid-json',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', 'invalid-json@blob:4'],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: '4 blobs served as HTTP 200 application/json whose body is not JSON (a byte changed, the closing bracket gone): parked at once; before the next run the retry entries are made due',
  },
  {
    fault: 'subscription-disabled',
    simulate: ['--records', DEFAULT_RECORDS, '--fault', 'subscription-disabled@content:1'],
    // The subscriptions exist before the first run, as on an established tenant. Otherwise the fault
    // lands on the listing right after the collector started a missing subscription (AF20022), a
    // race an admin could hardly produce, which the collector meets by failing that feed's poll
    // (exit 1, AF20023 named) and restarting the subscription on the next run (measured 2026-12-01).
    before: [['subscriptions', 'start']],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    makeDue: true,
    staging: "the subscriptions are started first (`subscriptions start -c CFG`); then the first content listing meets AF20023 (a tenant admin stopped the subscription); once the collector restarts it the API lists nothing from before the restart: that feed's content is lost by the API, and must be reported as a gap",
  },
  {
    fault: 'receiver: acks 3 s late',
    simulate: ['--records', '5000'],
    config: { 'output.forward.ack_timeout': '2s' },
    receiver: { kind: 'slow-ack', delayMs: 3000 },
    // Bounded: at this ack latency the collector moves ~15 records/s (see the report), 5,000 take
    // about 6 minutes, more than the whole matrix may take.
    maxRuns: 1,
    runTimeout: '90s',
    background: true,
    receiverLimit: 2,
    staging: 'every ack held back 3 s while output.forward.ack_timeout is 2s, 5,000 records: frames time out and are re-sent, the collector waits longer and sends fewer at once; the receiver must get at most 2x the records. One run, bounded by `--timeout 90s`',
  },
  {
    fault: 'receiver: down for 5 s',
    simulate: ['--records', DEFAULT_RECORDS],
    receiver: { kind: 'down', downMs: 5000 },
    maxRuns: 3,
    staging: 'nothing listens on the forward port for the first 5 s of the run (connection refused), then the receiver starts on that port',
  },
  {
    fault: 'receiver: restarts mid-run',
    simulate: ['--records', '20000'],
    receiver: { kind: 'restart', atFraction: 1 / 3, downMs: 2000 },
    maxRuns: 3,
    staging: 'once a third of the 20,000 records arrived, every connection is closed and nothing listens for 2 s, then the receiver is back on the same port',
  },
  {
    fault: 'collector: SIGKILL x5',
    simulate: ['--records', '60000', '--page-size', '100'],
    receiver: { kind: 'acking' },
    maxRuns: 3,
    kills: 5,
    staging: 'the collector is killed (SIGKILL) 5 times, each a random 0-1.2 s after records of that run start arriving, and restarted each time (the lock of the killed process is taken over); then runs until it exits 0',
  },
];

// =============================================================================================
// Pure: reading the collector's reports, verdicts, the table

/** One feed's line of `state show`. */
export interface FeedReport {
  feed: string;
  blobs: number;
  records: number;
  deadLettered: number;
  retryQueue: number;
  lost: number;
  gaps: number;
  lastError?: string;
}

/** Parses `state show` output (src/commands/admin.ts stateShowCommand); lines it does not know are skipped. */
export function parseStateShow(text: string): FeedReport[] {
  const out: FeedReport[] = [];
  const re = /^(\S+): cursor .*?; (\d+) blobs \/ (\d+) records delivered, (\d+) dead-lettered, .*?retry queue (\d+), lost (\d+), gaps (\d+)(?:, last error: (.*))?$/;
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    out.push({
      feed: m[1]!,
      blobs: Number(m[2]),
      records: Number(m[3]),
      deadLettered: Number(m[4]),
      retryQueue: Number(m[5]),
      lost: Number(m[6]),
      gaps: Number(m[7]),
      ...(m[8] ? { lastError: m[8] } : {}),
    });
  }
  return out;
}

/** The `m365-forward: ...` summary of a one-shot run (README "Run it"), without the JSON log lines. */
export function runSummary(stderr: string): { lines: string[]; problems: string[] } {
  const lines: string[] = [];
  const problems: string[] = [];
  let inProblems = false;
  for (const l of stderr.split('\n')) {
    if (l.startsWith('m365-forward: ')) {
      const text = l.slice('m365-forward: '.length);
      inProblems = text === 'but:';
      if (!inProblems) lines.push(text);
    } else if (inProblems && l.startsWith('  - ')) {
      problems.push(l.slice(4));
    } else {
      inProblems = false;
    }
  }
  return { lines, problems };
}

/** The collector's log (JSON lines on stderr) as one short phrase: what it retried, parked, re-sent. */
export function logDigest(stderr: string): string {
  const count = new Map<string, number>();
  const calls = new Set<string>();
  let gap: string | undefined;
  for (const l of stderr.split('\n')) {
    if (!l.startsWith('{')) continue;
    let e: { msg?: unknown; call?: unknown; from?: unknown; to?: unknown; reason?: unknown };
    try {
      e = JSON.parse(l) as typeof e;
    } catch {
      continue;
    }
    const msg = String(e.msg);
    count.set(msg, (count.get(msg) ?? 0) + 1);
    if (msg === 'API call failed; retrying' && typeof e.call === 'string') calls.add(e.call);
    if (msg === 'gap: content lost' && gap === undefined) gap = `${String(e.from)}..${String(e.to)}: ${String(e.reason)}`;
  }
  const n = (msg: string) => count.get(msg) ?? 0;
  const blobs = [...calls].filter((c) => c.startsWith('fetch blob ')).length;
  const parts: string[] = [];
  const retried = n('API call failed; retrying');
  if (retried) parts.push(`${retried} API call retries (${blobs} blob download(s), ${calls.size - blobs} other call(s))`);
  const facts: [string, string][] = [
    ['blob parked in the retry queue', 'blob(s) parked'],
    ['gap: content lost', 'gap(s) logged at error'],
    ['poll failed; the cursor stays, the next poll tries again', 'poll(s) failed'],
    ['forward frame not acked in time; re-sending it alone', 'frame(s) re-sent after an ack timeout'],
    ['forward acks come late; waiting longer for them and sending fewer frames at once', 'late-ack slow-down(s)'],
    ['forward connection gives no acks; reconnecting', 'reconnect(s) for lack of acks'],
    ['forward connection closed', 'forward connection(s) closed'],
  ];
  for (const [msg, what] of facts) if (n(msg)) parts.push(`${n(msg)} ${what}`);
  if (gap) parts.push(`first gap ${gap}`);
  return parts.join(', ');
}

/** Sum of counters over the last status record of each feed (README "Status records"). */
export function statusTotals(status: Record<string, unknown>[]): { feeds: number; lost: number; gaps: number; deadLettered: number } {
  const last = new Map<string, Record<string, unknown>>();
  for (const r of status) last.set(`${String(r.tenant)}/${String(r.contentType)}`, r);
  const sum = (k: string) => [...last.values()].reduce((n, r) => n + (typeof r[k] === 'number' ? (r[k] as number) : 0), 0);
  return { feeds: last.size, lost: sum('lost'), gaps: sum('gaps'), deadLettered: sum('deadLettered') };
}

/** One run of the collector as the table shows it. */
export type RunExit = number | 'killed' | 'hung';

/** What a row measured. */
export interface RowOutcome {
  served: number;
  blobs: number;
  /** Unique audit record Ids the receiver got. */
  delivered: number;
  /** Audit records the receiver got, copies included. */
  received: number;
  feeds: FeedReport[];
  status: ReturnType<typeof statusTotals>;
  exits: RunExit[];
  /** What was done between runs and what each run said, in order. */
  steps: string[];
  seconds: number;
  /** Frames the receiver got (for the receiver rows). */
  frames: number;
  /** Something that kept the row from being measured at all (the simulator did not start...). */
  failure?: string;
}

/** Exit codes in order, a run of kills folded (`killed x5 → 0`). */
export function formatExits(exits: RunExit[]): string {
  const parts: string[] = [];
  for (let i = 0; i < exits.length; ) {
    let j = i;
    while (j < exits.length && exits[j] === exits[i]) j++;
    const n = j - i;
    parts.push(n > 1 && exits[i] === 'killed' ? `killed ×${n}` : Array(n).fill(String(exits[i])).join(' → '));
    i = j;
  }
  return parts.join(' → ') || '—';
}

/**
 * The verdict a reader needs first: did every record served arrive, and if not, was the loss
 * reported (lost or gaps) or silent. Then duplicates and anything the reports disagree on.
 */
export function verdict(row: RowSpec, o: RowOutcome): string[] {
  const notes: string[] = [];
  const lost = o.feeds.reduce((n, f) => n + f.lost, 0);
  const gaps = o.feeds.reduce((n, f) => n + f.gaps, 0);
  const parked = o.feeds.reduce((n, f) => n + f.retryQueue, 0);
  const missing = o.served - o.delivered;
  if (missing === 0) notes.push(`**every record served arrived**`);
  else if (lost + gaps > 0) notes.push(`**${missing} of ${o.served} records did not arrive, reported** (${lost} blob(s) lost, ${gaps} gap(s))`);
  else if (parked > 0) notes.push(`**${missing} of ${o.served} records not delivered yet**: ${parked} blob(s) still in the retry queue (reported, exit 1)`);
  else if (o.exits.length > 0 && o.exits.at(-1) !== 0) notes.push(`**${missing} of ${o.served} records not delivered within the bound**: the last run exited ${String(o.exits.at(-1))} without finishing (not a reported loss: the checkpoint did not pass them)`);
  else notes.push(`**${missing} of ${o.served} records did not arrive and nothing reports it (silent loss)**`);
  if (missing < 0) notes.push(`the receiver got ${-missing} Id(s) the simulator did not serve`);
  for (const f of o.feeds) if (f.gaps > 0) notes.push(`${f.feed}: ${f.gaps} gap(s), ${f.records} records delivered${f.lastError ? `, last error: ${shorten(f.lastError, 160)}` : ''}`);
  if (o.received > o.delivered) notes.push(`${o.received - o.delivered} record(s) arrived twice or more (at least once: sent again when their ack did not come back in time)`);
  if (row.receiverLimit !== undefined) {
    const ratio = o.served ? o.received / o.served : 0;
    const copies = o.delivered ? o.received / o.delivered : 0;
    notes.push(
      `receiver got ${o.received} records in ${o.frames} frames: ${ratio.toFixed(2)}× the records served (limit ${row.receiverLimit}×: ${ratio <= row.receiverLimit ? 'within' : 'EXCEEDED'}), ${copies.toFixed(2)} copies per record that arrived`,
    );
  }
  if (o.status.feeds === 0) notes.push('no status record reached the receiver');
  if (o.status.feeds > 0 && (o.status.lost !== lost || o.status.gaps !== gaps || o.status.deadLettered !== o.feeds.reduce((n, f) => n + f.deadLettered, 0))) {
    notes.push(`status records disagree with state show: lost ${o.status.lost}, gaps ${o.status.gaps}, dead-lettered ${o.status.deadLettered}`);
  }
  return notes;
}

function shorten(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** A table cell: no pipes or newlines. */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

/** The markdown table. */
export function renderTable(rows: { spec: RowSpec; outcome: RowOutcome }[]): string {
  const head = ['fault', 'records served', 'delivered (unique ids)', 'duplicates', 'lost (reported)', 'dead-lettered', 'exit code', 'notes'];
  const out = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i >= 1 && i <= 5 ? '---:' : '---')).join('|')}|`];
  for (const { spec, outcome: o } of rows) {
    if (o.failure) {
      out.push(`| ${cell(`\`${spec.fault}\``)} | — | — | — | — | — | — | ${cell(`not measured: ${o.failure}`)} |`);
      continue;
    }
    const lost = o.feeds.reduce((n, f) => n + f.lost, 0);
    const gaps = o.feeds.reduce((n, f) => n + f.gaps, 0);
    const dead = o.feeds.reduce((n, f) => n + f.deadLettered, 0);
    const notes = [...verdict(spec, o), ...o.steps, `${o.seconds.toFixed(0)} s`].join('; ');
    out.push(
      `| ${[
        `\`${spec.fault}\``,
        String(o.served),
        String(o.delivered),
        String(o.received - o.delivered),
        `${lost} lost, ${gaps} gap${gaps === 1 ? '' : 's'}`,
        String(dead),
        formatExits(o.exits),
        notes,
      ]
        .map(cell)
        .join(' | ')} |`,
    );
  }
  return out.join('\n');
}

/** Sets a dotted key (`output.forward.ack_timeout`) in a parsed YAML tree. */
export function setDotted(tree: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = tree;
  for (const p of parts.slice(0, -1)) {
    if (typeof node[p] !== 'object' || node[p] === null) node[p] = {};
    node = node[p] as Record<string, unknown>;
  }
  node[parts.at(-1)!] = value;
}

/** A small seeded PRNG (mulberry32): the SIGKILL delays are reproducible with --seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// =============================================================================================
// I/O: child processes (every one tracked, so none outlives the matrix)

const children = new Set<ChildProcess>();
/** Row folders not yet removed (removed on SIGINT too). */
const tempDirs = new Set<string>();
const spawnedPids: number[] = [];

function spawnCli(args: string[]): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', cliPath, ...args], { cwd: repoRoot, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  if (child.pid !== undefined) spawnedPids.push(child.pid);
  child.once('close', () => children.delete(child));
  return child;
}

/** Kills every child still running (by its own pid), e.g. on SIGINT. */
function killChildren(): void {
  for (const c of children) c.kill('SIGKILL');
}

/** Runs the CLI to completion (`hardKillMs` bounds it); `onSpawn` gets the child (for SIGKILL moments). */
async function runCli(args: string[], opts: { hardKillMs?: number; onSpawn?: (c: ChildProcess) => void } = {}): Promise<{ exit: RunExit; stdout: string; stderr: string }> {
  const child = spawnCli(args);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    child.kill('SIGKILL');
  }, opts.hardKillMs ?? RUN_KILL_MS);
  opts.onSpawn?.(child);
  const exit = await new Promise<RunExit>((resolve) => child.once('close', (code, signal) => resolve(hung ? 'hung' : signal === 'SIGKILL' ? 'killed' : (code ?? -1))));
  clearTimeout(timer);
  return { exit, stdout, stderr };
}

/** `simulate ... --write-config CFG`, until its ready line; stop() ends it with SIGTERM and waits. */
async function startSimulate(args: string[]): Promise<{ ready: Record<string, unknown>; stop: () => Promise<void> }> {
  const child = spawnCli(['simulate', ...args]);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  };
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const rl = readline.createInterface({ input: child.stdout! });
      rl.once('line', resolve);
      child.once('close', (c) => reject(new Error(`simulate exited ${c} before it was ready: ${stderr.trim().split('\n').at(-1) ?? ''}`)));
    });
    return { ready: JSON.parse(line) as Record<string, unknown>, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// =============================================================================================
// I/O: the receiver as the collector sees it

/**
 * A TCP relay in front of the acking receiver: the collector connects here, every byte goes on to
 * the receiver, every answer (ack) comes back, `ackDelayMs` later if set. `down()` cuts every
 * connection and stops listening; `listen(port)` comes back on the same port.
 */
class ReceiverFront {
  #server?: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly upstreamPort: number,
    private readonly ackDelayMs = 0,
  ) {}

  listen(port: number): Promise<number> {
    const server = net.createServer((client) => this.#relay(client));
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  #relay(client: net.Socket): void {
    const upstream = net.connect(this.upstreamPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('error', () => {});
      s.once('close', () => {
        this.#sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => {
      if (this.ackDelayMs <= 0) {
        client.write(d);
        return;
      }
      // The same delay for every chunk keeps the answers in order.
      const t = setTimeout(() => {
        this.#timers.delete(t);
        if (!client.destroyed) client.write(d);
      }, this.ackDelayMs);
      this.#timers.add(t);
    });
  }

  /** Every connection cut (no answer pending is delivered), nothing listening. */
  async down(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const server = this.#server;
    this.#server = undefined;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const s of this.#sockets) s.destroy();
    await closed;
  }
}

/** A loopback port nothing listens on right now (bound, then released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

// =============================================================================================
// I/O: the state between runs

/**
 * Makes every parked blob due now, as if its retry delay (BACKOFF.blobRetry: 1 min doubling to
 * 1 h, jittered) had passed: the collector is not running, the lock is taken like any owner does.
 * Returns how many entries it changed.
 */
async function makeRetriesDue(statePath: string): Promise<number> {
  const store = new StateStore(statePath);
  store.lock();
  try {
    let n = 0;
    const now = Date.now() - 1000;
    for (const f of store.load().values()) {
      for (const r of f.retry.values()) {
        r.nextAttemptAt = Math.min(r.nextAttemptAt, now);
        n++;
      }
    }
    if (n > 0) await store.compact();
    await store.close();
    return n;
  } finally {
    store.unlock();
  }
}

// =============================================================================================
// One row

const log = (s: string) => process.stderr.write(`[faults] ${s}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function runRow(spec: RowSpec, seed: number, random: () => number): Promise<RowOutcome> {
  const t0 = performance.now();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-faults-'));
  tempDirs.add(dir);
  const cfg = path.join(dir, 'sim.yaml');
  const rx = await startForwardReceiver();
  let front: ReceiverFront | undefined;
  let sim: Awaited<ReturnType<typeof startSimulate>> | undefined;
  const steps: string[] = [];
  const exits: RunExit[] = [];
  const rowTimers: NodeJS.Timeout[] = [];
  const outcome = (extra: Partial<RowOutcome> = {}): RowOutcome => {
    const audit = rx.entries.filter((e) => e.tag.startsWith(AUDIT_TAG_PREFIX));
    return {
      served: Number(sim?.ready.records ?? 0),
      blobs: Number(sim?.ready.blobs ?? 0),
      delivered: new Set(audit.map((e) => String(e.record.Id))).size,
      received: audit.length,
      feeds: [],
      status: statusTotals(rx.entries.filter((e) => e.tag === STATUS_TAG).map((e) => e.record)),
      exits,
      steps,
      seconds: (performance.now() - t0) / 1000,
      frames: rx.frames,
      ...extra,
    };
  };
  try {
    try {
      sim = await startSimulate(['--seed', String(seed), ...spec.simulate, '--write-config', cfg]);
    } catch (err) {
      return outcome({ failure: (err as Error).message });
    }
    const served = Number(sim.ready.records);

    // The port the collector sends to: the receiver itself, or the relay in front of it.
    let port = rx.port;
    const r = spec.receiver;
    if (r.kind === 'slow-ack') {
      front = new ReceiverFront(rx.port, r.delayMs);
      port = await front.listen(0);
    } else if (r.kind === 'restart') {
      front = new ReceiverFront(rx.port);
      port = await front.listen(0);
    } else if (r.kind === 'down') {
      front = new ReceiverFront(rx.port);
      port = await freePort();
    }
    const tree = parseYaml(readFileSync(cfg, 'utf8')) as Record<string, unknown>;
    setDotted(tree, 'output.forward.port', port);
    for (const [k, v] of Object.entries(spec.config ?? {})) setDotted(tree, k, v);
    writeFileSync(cfg, stringifyYaml(tree));
    const statePath = String((tree.state as Record<string, unknown>).path);
    const auditCount = () => rx.entries.reduce((n, e) => n + (e.tag.startsWith(AUDIT_TAG_PREFIX) ? 1 : 0), 0);

    /** The receiver's own events during the first run (row-level timers, cleared in `finally`). */
    const receiverEvents = (runStarted: number) => {
      const f = front;
      if (!f) return;
      const comeBack = (ms: number) => {
        rowTimers.push(setTimeout(() => void f.listen(port).catch((e: Error) => log(`receiver could not come back on ${port}: ${e.message}`)), ms));
      };
      if (r.kind === 'down') {
        comeBack(r.downMs);
        const watch = setInterval(() => {
          if (auditCount() === 0) return;
          clearInterval(watch);
          steps.push(`first record arrived ${((performance.now() - runStarted) / 1000).toFixed(1)} s into run 1 (receiver up at ${r.downMs / 1000} s)`);
        }, 10);
        rowTimers.push(watch);
      }
      if (r.kind === 'restart') {
        const watch = setInterval(() => {
          if (auditCount() < served * r.atFraction) return;
          clearInterval(watch);
          const at = ((performance.now() - runStarted) / 1000).toFixed(1);
          steps.push(`receiver cut every connection ${at} s into run 1, with ${auditCount()} records in; back after ${r.downMs / 1000} s`);
          void f.down().then(() => comeBack(r.downMs));
        }, 10);
        rowTimers.push(watch);
      }
    };
    const runArgs = ['run', '-c', cfg, '--once', '--timeout', spec.runTimeout ?? RUN_TIMEOUT];
    for (const cmd of spec.before ?? []) {
      const res = await runCli([...cmd, '-c', cfg], { hardKillMs: 60_000 });
      steps.push(`\`${cmd.join(' ')}\` before run 1: exit ${res.exit}`);
    }
    let runs = 0;
    let kills = 0;
    for (;;) {
      const killing = kills < (spec.kills ?? 0);
      if (!killing && runs >= spec.maxRuns) break;
      let killTimer: NodeJS.Timeout | undefined;
      const before = auditCount();
      const started = performance.now();
      const res = await runCli(runArgs, {
        onSpawn: (child) => {
          if (killing) {
            // A random moment once this run's records flow: mid-delivery, not during start-up.
            const afterMs = Math.round(random() * 1200);
            killTimer = setInterval(() => {
              if (auditCount() > before) {
                clearInterval(killTimer);
                killTimer = setTimeout(() => child.kill('SIGKILL'), afterMs);
              }
            }, 10);
          }
          if (runs === 0 && kills === 0) receiverEvents(started);
        },
      });
      clearTimeout(killTimer);
      exits.push(res.exit);
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      const summary = runSummary(res.stderr);
      const digest = logDigest(res.stderr);
      if (res.exit === 'killed') {
        kills++;
        steps.push(`kill ${kills} after ${secs} s, ${auditCount() - before} records in that run${digest ? ` (${digest})` : ''}`);
        continue;
      }
      runs++;
      const said = summary.problems.length
        ? summary.problems.map((p) => p.replace(/ \(see [^)]*\)$/, '')).join(' / ')
        : (summary.lines.find((l) => /^(gave up|--timeout|interrupted)/.test(l)) ?? '');
      const last = res.exit === 0 || said ? '' : `: ${(res.stderr.trim().split('\n').at(-1) ?? '').replace(/^m365-forward: /, '')}`;
      log(`${spec.fault}: run ${runs} exit ${res.exit} in ${secs} s${said ? `: ${said}` : last}`);
      steps.push(`run ${runs} exit ${res.exit} after ${secs} s${digest ? ` (${digest})` : ''}${said ? `: ${shorten(said, 220)}` : shorten(last, 220)}`);
      // Everything available was delivered: nothing left to kill or retry.
      if (res.exit === 0) {
        if (killing) steps.push(`only ${kills} of ${spec.kills} kills landed: the run ended first`);
        break;
      }
      if (spec.makeDue && runs < spec.maxRuns) {
        const n = await makeRetriesDue(statePath);
        if (n > 0) steps.push(`${n} retry entr${n === 1 ? 'y' : 'ies'} made due`);
      }
    }
    const show = await runCli(['state', 'show', '-c', cfg], { hardKillMs: 30_000 });
    const feeds = parseStateShow(show.stdout);
    if (feeds.length === 0) steps.push(`state show printed no feed (exit ${show.exit})`);
    return outcome({ feeds });
  } finally {
    for (const t of rowTimers) clearTimeout(t);
    await sim?.stop();
    await front?.down();
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

// =============================================================================================
// Main

function usage(): string {
  return [
    'usage: node --import tsx test/bench/fault-matrix.ts [--seed N] [--only FAULT[,FAULT...]] [--list]',
    '  --seed N    the simulator seed and the SIGKILL moments (default 7)',
    '  --only      run only these rows (names as --list prints them)',
    '  --list      print the row names and exit',
  ].join('\n');
}

function parseArgs(argv: string[]): { seed: number; only?: string[]; list: boolean } | string {
  let seed = 7;
  let only: string[] | undefined;
  let list = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--seed') {
      seed = Number(argv[++i]);
      if (!Number.isInteger(seed)) return `--seed needs an integer, got '${argv[i] ?? ''}'`;
    } else if (a === '--only') {
      only = (argv[++i] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      const unknown = only.filter((o) => !ROWS.some((r) => r.fault === o));
      if (unknown.length || only.length === 0) return `--only: unknown row(s) ${unknown.map((u) => `'${u}'`).join(', ') || "''"} (see --list)`;
    } else if (a === '--list') list = true;
    else if (a === '--help' || a === '-h') return '';
    else return `unknown option '${a}'`;
  }
  return { seed, only, list };
}

function machine(): string {
  const cpus = os.cpus();
  let commit = '';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
    commit = `, commit ${commit}${dirty ? ' + uncommitted changes' : ''}`;
  } catch {
    // not a git checkout
  }
  return `${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${os.platform()} ${os.arch()}${commit}`;
}

function stillRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (typeof args === 'string') {
    process.stderr.write(args ? `fault-matrix: ${args}\n${usage()}\n` : `${usage()}\n`);
    return args ? 2 : 0;
  }
  if (args.list) {
    for (const r of ROWS) process.stdout.write(`${r.fault}\n`);
    return 0;
  }
  const rows = ROWS.filter((r) => !args.only || args.only.includes(r.fault));
  const random = prng(args.seed);
  const t0 = performance.now();
  const started = new Date();
  const outcomes = new Map<RowSpec, RowOutcome>();
  const measure = async (spec: RowSpec) => {
    log(`${spec.fault}: simulate ${spec.simulate.join(' ')}${spec.config ? `; config ${JSON.stringify(spec.config)}` : ''}${spec.background ? ' (beside the other rows)' : ''}`);
    let outcome: RowOutcome;
    try {
      outcome = await runRow(spec, args.seed, random);
    } catch (err) {
      // One row that cannot be staged must not hide the others (nor leave a rejection unhandled beside them).
      const failure = (err as Error).message;
      outcome = { served: 0, blobs: 0, delivered: 0, received: 0, feeds: [], status: statusTotals([]), exits: [], steps: [], seconds: 0, frames: 0, failure };
    }
    outcomes.set(spec, outcome);
    log(`${spec.fault}: served ${outcome.served}, delivered ${outcome.delivered}, received ${outcome.received}, exits ${formatExits(outcome.exits)} (${outcome.seconds.toFixed(1)} s)`);
  };
  const beside = Promise.all(rows.filter((r) => r.background).map(measure));
  for (const spec of rows.filter((r) => !r.background)) await measure(spec);
  await beside;
  const results = rows.map((spec) => ({ spec, outcome: outcomes.get(spec)! }));
  const seconds = (performance.now() - t0) / 1000;
  await sleep(200); // let the last children's close events land before checking
  const left = spawnedPids.filter(stillRunning);
  const onlyArg = args.only ? ` --only '${args.only.join(',')}'` : '';
  const out = [
    `Fault matrix, m365-forward, ${started.toISOString()}`,
    '',
    renderTable(results),
    '',
    'How each row was staged (simulator flags besides `--seed` and `--write-config`; config keys changed in the written config):',
    ...results.map(({ spec }) => `- \`${spec.fault}\`: \`simulate ${spec.simulate.join(' ')}\`${spec.config ? `, ${Object.entries(spec.config).map(([k, v]) => `\`${k}: ${String(v)}\``).join(', ')}` : ''}. ${spec.staging}.`),
    '',
    `Each run: \`node --import tsx src/cli.ts ${['run', '-c', 'CFG', '--once', '--timeout', RUN_TIMEOUT].join(' ')}\` (unless the row says otherwise); after the last run \`state show -c CFG\`. Exit codes in order, \`killed\` = SIGKILL.`,
    'Delivered and duplicates: audit records at the acking receiver, by record Id. Lost, gaps and dead-lettered: `state show` after the last run; the last status record of each feed that reached the receiver says the same unless the row notes otherwise.',
    `Reproduce: \`npm run faults -- --seed ${args.seed}${onlyArg}\` (= \`node --import tsx test/bench/fault-matrix.ts --seed ${args.seed}${onlyArg}\`)`,
    `Machine: ${machine()}`,
    `Took ${seconds.toFixed(0)} s for ${results.length} rows; ${spawnedPids.length} processes started, ${left.length ? `STILL RUNNING: ${left.join(', ')}` : 'none left running'}.`,
  ];
  process.stdout.write(out.join('\n') + '\n');
  return left.length ? 1 : 0;
}

/** Run as a script (not when a test imports the pure functions above). */
const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;

for (const sig of isMain ? (['SIGINT', 'SIGTERM'] as const) : []) {
  process.once(sig, () => {
    killChildren();
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    process.stderr.write(`fault-matrix: stopped by ${sig}; every child process killed, temporary folders removed\n`);
    process.exit(130);
  });
}

if (isMain) {
  try {
    process.exitCode = await main();
  } catch (err) {
    killChildren();
    process.stderr.write(`fault-matrix: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
