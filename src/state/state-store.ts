import { closeSync, constants, fstatSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { CollectorError } from '../errors.ts';
import { FeedCheckpoint, type FeedScalars, type JournalOp, type RetryEntry } from '../polling/checkpoint.ts';
import { DoneSet, fingerprint, isExpiryMinute, isFingerprint, toMinutes } from '../polling/done-set.ts';
import { API_RETENTION_MS } from '../management-api/limits.ts';
import { acquireStateLock, type StateLock } from './lock.ts';

/**
 * The state: a snapshot file (`state.path`, JSON) and an append-only journal beside it
 * (`<state>.journal`, one JSON operation a line). Why two files: a feed's done-set holds every
 * content id of the API's 7-day retention (50,000 blobs a day per content type on a large tenant),
 * so rewriting one document per delivered blob would write megabytes each time. Instead each change
 * is one short journal line, written in batches (at most a few a second, and always before an
 * exit), and the journal is folded into a new snapshot when it grows larger than the snapshot.
 *
 * Crash safety:
 * - the snapshot is written atomically (temp file, fsync, rename, fsync of the folder), with a
 *   generation number; the journal starts with a header naming the generation it extends, and is
 *   replaced the same atomic way after each snapshot. A journal whose generation does not match
 *   the snapshot's (a crash between the two renames) is already inside the snapshot and is ignored.
 * - journal operations are applied in order, so a crash keeps a prefix of the changes: a
 *   consistent, earlier state. A torn last line (crash mid-append) is ignored. Losing the tail only
 *   means re-sending blobs that were acked after the last flush: at least once, never loss.
 * - a snapshot or journal that cannot be read or understood stops the collector with an error
 *   naming the file and the problem (never its content: it may hold tenant data). It is never
 *   overwritten: it holds the only record of what was already delivered.
 */
export const STATE_VERSION = 2;
/** Fold the journal into a new snapshot once it is larger than this, or than the snapshot. */
const COMPACT_MIN_BYTES = 4 * 1024 * 1024;
/** Batching delay for journal writes. */
const FLUSH_DELAY_MS = 200;

export function feedKey(tenantName: string, contentType: string): string {
  return `${tenantName}/${contentType}`;
}

interface FeedRecord {
  scalars: FeedScalars;
  done: DoneSet;
  retry: Map<string, RetryEntry>;
}

export class StateStore {
  readonly journalFile: string;
  readonly #feeds = new Map<string, FeedCheckpoint>();
  #generation = 0;
  #snapshotBytes = 0;
  #journalBytes = 0;
  #pending: string[] = [];
  #timer?: NodeJS.Timeout;
  #chain: Promise<void> = Promise.resolve();
  #fh?: FileHandle;
  #failed?: CollectorError;
  #loaded = false;
  #lock?: StateLock;
  #closed = false;
  /** Called once when a background write fails (the run must stop: delivery without checkpoints re-sends forever). */
  onError?: (err: CollectorError) => void;

  constructor(readonly file: string, private readonly opts: { flushDelayMs?: number; compactMinBytes?: number } = {}) {
    this.journalFile = `${file}.journal`;
  }

  /** Takes the state for this process (see lock.ts) and removes temp files a crash left behind. */
  lock(): void {
    this.#lock = acquireStateLock(this.file);
    const dir = path.dirname(this.file);
    const base = path.basename(this.file);
    try {
      for (const name of readdirSync(dir)) {
        if (name.startsWith(`${base}.`) && name.endsWith('.tmp')) rmSync(path.join(dir, name), { force: true, recursive: true });
      }
    } catch {
      // nothing to clean
    }
  }

  unlock(): void {
    this.#lock?.release();
    this.#lock = undefined;
  }

  /** Every feed in the state (feeds no longer in the config are dropped at start by the collector). */
  get feeds(): ReadonlyMap<string, FeedCheckpoint> {
    return this.#feeds;
  }

  /** Reads the snapshot and replays the journal. A missing state is an empty one. */
  load(): ReadonlyMap<string, FeedCheckpoint> {
    this.#feeds.clear();
    const records = new Map<string, FeedRecord>();
    const text = readStateFile(this.file, 'state file');
    if (text !== undefined) {
      this.#snapshotBytes = Buffer.byteLength(text);
      this.#generation = parseSnapshot(text, this.file, records);
    }
    this.#journalBytes = replayJournal(this.journalFile, this.#generation, records);
    for (const [key, r] of records) this.#feeds.set(key, new FeedCheckpoint(key, r.scalars, r.done, r.retry, this.journal));
    this.#loaded = true;
    return this.#feeds;
  }

  /**
   * Forgets a feed (no longer in the config). Not journaled: the next compaction writes the state
   * without it, and until then a restart finds it again and drops it again.
   */
  dropFeed(key: string): void {
    this.#feeds.delete(key);
  }

  /** A new feed's checkpoint, owned by this store. */
  createFeed(key: string, tenantId: string, apiNow: number, lookbackMs: number): FeedCheckpoint {
    const cp = FeedCheckpoint.create(key, tenantId, apiNow, lookbackMs, this.journal);
    this.#feeds.set(key, cp);
    return cp;
  }

  /** Records one change; it reaches the disk with the next batch. */
  readonly journal = (op: JournalOp): void => {
    // After close nothing is written any more (the lock may be gone): a change made while the
    // process winds down is simply not kept, and at worst a blob is sent again next time.
    if (this.#closed) return;
    this.#pending.push(JSON.stringify(op));
    if (!this.#timer && !this.#failed) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.flush().catch(() => {}); // reported through onError
      }, this.opts.flushDelayMs ?? FLUSH_DELAY_MS);
    }
  };

  /** Writes every change recorded so far to disk (fsync); resolves when it is durable. */
  flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const run = this.#chain.then(() => this.#write());
    this.#chain = run.catch(() => {});
    return run;
  }

  /** Folds everything into a new snapshot and an empty journal now (at start, after loading). */
  compact(): Promise<void> {
    const run = this.#chain.then(() => this.#compact());
    this.#chain = run.catch(() => {});
    return run;
  }

  /** Flushes and closes the journal. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#loaded && (this.#pending.length > 0 || this.#timer)) await this.flush();
    } finally {
      this.#closed = true;
      clearTimeout(this.#timer);
      this.#timer = undefined;
      await this.#chain;
      await this.#fh?.close().catch(() => {});
      this.#fh = undefined;
    }
  }

  /** Whether a write failed (the error), for the run's final report. */
  get failure(): CollectorError | undefined {
    return this.#failed;
  }

  async #write(): Promise<void> {
    if (this.#failed) throw this.#failed;
    if (this.#pending.length === 0) return;
    try {
      if (this.#journalBytes > Math.max(this.opts.compactMinBytes ?? COMPACT_MIN_BYTES, this.#snapshotBytes) || !this.#fh) {
        await this.#compactUnsafe();
        return;
      }
      const text = this.#pending.join('\n') + '\n';
      this.#pending = [];
      // writeFile, not write: write() may take only part of it (a full disk gives a short write,
      // not an error) and a torn line would make the journal unreadable.
      try {
        await this.#fh.writeFile(text);
        await this.#fh.datasync();
      } catch (err) {
        await this.#fh.truncate(this.#journalBytes).catch(() => {}); // no torn line left behind
        throw err;
      }
      this.#journalBytes += Buffer.byteLength(text);
    } catch (err) {
      throw this.#fail(err);
    }
  }

  async #compact(): Promise<void> {
    if (this.#failed) throw this.#failed;
    try {
      await this.#compactUnsafe();
    } catch (err) {
      throw this.#fail(err);
    }
  }

  async #compactUnsafe(): Promise<void> {
    // The in-memory state already holds every pending change: the snapshot subsumes them.
    this.#pending = [];
    const generation = this.#generation + 1;
    const snapshot = serializeSnapshot(this.#feeds, generation);
    await writeAtomic(this.file, snapshot);
    this.#generation = generation;
    this.#snapshotBytes = Buffer.byteLength(snapshot);
    await this.#fh?.close().catch(() => {});
    this.#fh = undefined;
    const header = JSON.stringify({ journal: STATE_VERSION, generation }) + '\n';
    await writeAtomic(this.journalFile, header);
    this.#fh = await open(this.journalFile, 'a', 0o600);
    this.#journalBytes = Buffer.byteLength(header);
  }

  #fail(err: unknown): CollectorError {
    const e =
      err instanceof CollectorError
        ? err
        : new CollectorError('STATE_IO', `cannot write state file ${this.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { fatal: true, cause: err });
    if (!this.#failed) {
      this.#failed = e;
      this.onError?.(e);
    }
    return e;
  }
}

/**
 * temp file → write → fsync → rename → fsync(folder), so a crash at any moment leaves the old or
 * the new file, never a torn one.
 */
async function writeAtomic(file: string, text: string): Promise<void> {
  const dir = path.dirname(file);
  const tmp = `${file}.${process.pid}.tmp`;
  await mkdir(dir, { recursive: true });
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  // fsync the folder so the rename itself survives a power loss.
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/**
 * Reads one of the state's files; undefined when it does not exist. Opened without blocking and
 * checked to be a regular file before reading: a FIFO or a device at the state path would
 * otherwise block the process where no signal can stop it.
 */
function readStateFile(file: string, what: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new CollectorError('STATE_IO', `cannot read ${what} ${file}: ${code ?? (err as Error).message}`, { fatal: true });
  }
  try {
    if (!fstatSync(fd).isFile()) throw new CollectorError('STATE_IO', `${what} ${file} is not a regular file: move it away, or set another state.path`, { fatal: true });
    return readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof CollectorError) throw err;
    throw new CollectorError('STATE_IO', `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { fatal: true });
  } finally {
    closeSync(fd);
  }
}

function serializeSnapshot(feeds: ReadonlyMap<string, FeedCheckpoint>, generation: number): string {
  const out: Record<string, unknown> = {};
  for (const [key, cp] of feeds) out[key] = { ...cp.s, retry: [...cp.retry.values()], done: cp.done.encode() };
  return JSON.stringify({ version: STATE_VERSION, generation, savedAt: new Date().toISOString(), feeds: out }) + '\n';
}

function corrupt(file: string, what: string): CollectorError {
  return new CollectorError(
    'STATE_CORRUPT',
    `state file ${file} is not usable: ${what}. It was left untouched; fix or move it away (the collector then starts from polling.initial_lookback and may re-send or miss content).`,
    { fatal: true },
  );
}

/** JSON.parse's message quotes the text around the error (tenant data): keep only the position. */
function jsonProblem(err: unknown): string {
  const pos = /position (\d+)/.exec((err as Error).message)?.[1];
  return pos ? `not valid JSON (at byte ${pos})` : 'not valid JSON';
}

/** Reads a snapshot (version 2, or version 1 of earlier releases) into `records`; returns its generation. */
export function parseSnapshot(text: string, file: string, records: Map<string, FeedRecord>): number {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw corrupt(file, jsonProblem(err));
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw corrupt(file, 'the top level is not an object');
  const d = doc as Record<string, unknown>;
  if (d.version !== 1 && d.version !== STATE_VERSION) throw corrupt(file, `version is ${typeof d.version === 'number' ? d.version : 'missing'}; this collector reads versions 1 and ${STATE_VERSION}`);
  if (typeof d.feeds !== 'object' || d.feeds === null || Array.isArray(d.feeds)) throw corrupt(file, '"feeds" is not an object');
  for (const [key, raw] of Object.entries(d.feeds as Record<string, unknown>)) {
    const at = `feeds[${JSON.stringify(key.slice(0, 100))}]`;
    records.set(key, d.version === 1 ? fromV1(raw, at, file) : fromV2(raw, at, file));
  }
  const gen = d.version === 1 ? 0 : d.generation;
  if (typeof gen !== 'number' || !Number.isInteger(gen) || gen < 0) throw corrupt(file, 'generation is not a non-negative integer');
  return gen;
}

/** A count or a time in ms: a non-negative number a Date can hold (Date's range is ±8.64e15 ms). */
function num(f: Record<string, unknown>, k: string, at: string, file: string): number {
  const v = f[k];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 8.64e15) throw corrupt(file, `${at}.${k} is not a count or a time`);
  return v;
}

function retryEntries(v: unknown, at: string, file: string): Map<string, RetryEntry> {
  if (!Array.isArray(v)) throw corrupt(file, `${at}.retry is not a list`);
  const m = new Map<string, RetryEntry>();
  v.forEach((r, i) => {
    const e = checkRetry(r, `${at}.retry[${i}]`, file);
    m.set(e.contentId, e);
  });
  return m;
}

function checkRetry(r: unknown, at: string, file: string): RetryEntry {
  const e = (typeof r === 'object' && r !== null ? r : {}) as Record<string, unknown>;
  for (const k of ['contentType', 'contentId', 'contentUri', 'contentCreated', 'contentExpiration', 'lastError']) {
    if (typeof e[k] !== 'string') throw corrupt(file, `${at}.${k} is not a string`);
  }
  for (const k of ['attempts', 'nextAttemptAt']) num(e, k, at, file);
  if (e.notFound !== undefined) num(e, 'notFound', at, file);
  return e as unknown as RetryEntry;
}

const SCALAR_NUMBERS = ['origin', 'cursor', 'lastSweepAt', 'blobsDelivered', 'recordsDelivered', 'deadLettered', 'lost', 'gaps', 'lateBlobs', 'maxLatenessSeconds'] as const;

function checkScalars(f: Record<string, unknown>, at: string, file: string): FeedScalars {
  if (typeof f !== 'object' || f === null || Array.isArray(f)) throw corrupt(file, `${at} is not a feed's state`);
  const s: Record<string, unknown> = {};
  if (typeof f.tenantId !== 'string') throw corrupt(file, `${at}.tenantId is not a string`);
  s.tenantId = f.tenantId;
  for (const k of SCALAR_NUMBERS) s[k] = num(f, k, at, file);
  if (typeof f.baselined !== 'boolean') throw corrupt(file, `${at}.baselined is not true or false`);
  s.baselined = f.baselined;
  if (f.lastError !== undefined && typeof f.lastError !== 'string') throw corrupt(file, `${at}.lastError is not a string`);
  if (typeof f.lastError === 'string') s.lastError = f.lastError;
  return s as unknown as FeedScalars;
}

function fromV2(raw: unknown, at: string, file: string): FeedRecord {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw corrupt(file, `${at} is not an object`);
  const f = raw as Record<string, unknown>;
  const done = DoneSet.decode(f.done);
  if (!done) throw corrupt(file, `${at}.done is not a done-set`);
  return { scalars: checkScalars(f, at, file), done, retry: retryEntries(f.retry, at, file) };
}

/**
 * Version 1 (one JSON document, done-set of full ids pruned to the overlap). Its coverage is only
 * known from the cursor back to the overlap it kept, so the sweep starts there.
 */
function fromV1(raw: unknown, at: string, file: string): FeedRecord {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw corrupt(file, `${at} is not an object`);
  const f = raw as Record<string, unknown>;
  const cursor = num(f, 'cursor', at, file);
  if (typeof f.done !== 'object' || f.done === null || Array.isArray(f.done)) throw corrupt(file, `${at}.done is not an object`);
  const done = new DoneSet();
  let oldest = cursor;
  for (const [id, created] of Object.entries(f.done as Record<string, unknown>)) {
    const x = typeof created === 'number' ? toMinutes(created + API_RETENTION_MS + 3600_000) : NaN;
    if (typeof created !== 'number' || !isExpiryMinute(x)) throw corrupt(file, `${at}.done entry is not a time`);
    oldest = Math.min(oldest, created);
    done.add(fingerprint(id), x);
  }
  const scalars: FeedScalars = {
    tenantId: '',
    origin: oldest,
    cursor,
    lastSweepAt: 0,
    // Everything before the version-1 cursor's overlap was delivered: the baseline marks it done.
    baselined: false,
    blobsDelivered: num(f, 'blobsDelivered', at, file),
    recordsDelivered: num(f, 'recordsDelivered', at, file),
    deadLettered: 0,
    lost: num(f, 'lost', at, file),
    gaps: 0,
    lateBlobs: 0,
    maxLatenessSeconds: 0,
    ...(typeof f.lastError === 'string' ? { lastError: f.lastError } : {}),
  };
  return { scalars, done, retry: retryEntries(f.retry, at, file) };
}

/** Applies the journal's operations (when it extends this snapshot generation); returns its size. */
function replayJournal(file: string, generation: number, records: Map<string, FeedRecord>): number {
  const text = readStateFile(file, 'state journal');
  if (text === undefined) return 0;
  const lines = text.split('\n');
  // Drops what follows the last newline: nothing when the file ends cleanly, or a line torn by a
  // crash mid-append (never reported durable, so never relied upon).
  lines.pop();
  if (lines.length === 0) return Buffer.byteLength(text);
  let header: { journal?: unknown; generation?: unknown };
  try {
    header = JSON.parse(lines[0]!);
  } catch {
    throw corrupt(file, 'its first line is not a journal header');
  }
  if (header.journal !== STATE_VERSION || typeof header.generation !== 'number') throw corrupt(file, 'its first line is not a journal header');
  if (header.generation !== generation) return 0; // folded into the snapshot already (crash between the two renames)
  for (let i = 1; i < lines.length; i++) {
    let op: JournalOp;
    try {
      op = JSON.parse(lines[i]!);
    } catch (err) {
      throw corrupt(file, `line ${i + 1} is ${jsonProblem(err)}`);
    }
    applyOp(op, records, `line ${i + 1}`, file);
  }
  return Buffer.byteLength(text);
}

function applyOp(op: JournalOp, records: Map<string, FeedRecord>, at: string, file: string): void {
  if (typeof op !== 'object' || op === null || typeof op.k !== 'string') throw corrupt(file, `${at} is not a journal operation`);
  if ('s' in op) {
    const prev = records.get(op.k);
    const scalars = checkScalars(op.s as unknown as Record<string, unknown>, at, file);
    if (prev) prev.scalars = scalars;
    else records.set(op.k, { scalars, done: new DoneSet(), retry: new Map() });
    return;
  }
  const r = records.get(op.k);
  if (!r) throw corrupt(file, `${at} changes a feed it never created`);
  if ('d' in op) {
    if (!isFingerprint(op.d) || !isExpiryMinute(op.x)) throw corrupt(file, `${at} is not a done-set entry`);
    r.done.add(op.d, op.x);
  } else if ('r' in op) {
    const e = checkRetry(op.r, at, file);
    r.retry.set(e.contentId, e);
  } else if ('rd' in op) {
    if (typeof op.rd !== 'string') throw corrupt(file, `${at} is not a retry removal`);
    r.retry.delete(op.rd);
  } else {
    throw corrupt(file, `${at} is not a journal operation`);
  }
}
