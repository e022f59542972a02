/**
 * The state lock: `<state file>.lock` says which running collector owns a state file.
 *
 * Two collectors on one state file would overwrite each other's checkpoints (each writes the whole
 * file from its memory), so a second one must stop with a clear error. A lock whose owner is gone
 * (kill -9, power loss, a container restarted with the same pid) must not block start for good:
 * it is stale and is taken over. Deciding "stale" is a pure function (`judgeHolder`); the rest of
 * this module is the file dance that makes creating, taking over and releasing safe when several
 * collectors start at the same moment.
 *
 * Files next to the state file, all in its folder:
 * - `<state>.lock`                the lock: JSON `{"pid":…,"startTime":…,"cmd":"m365-forward"}`
 *                                 (an older version wrote just `"<pid>\n"`; that is read too).
 * - `<state>.lock.takeover`       held for the few microseconds of a takeover (see `takeOver`).
 * - `<state>.lock.<pid>-<hex>.*`  private temporary names, gone when the call returns.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, lstatSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CollectorError } from '../errors.ts';

/** A lock taken by `acquireStateLock`. */
export interface StateLock {
  /** The lock file's path: `<state file>.lock`. */
  readonly file: string;
  /** Removes the lock file if it still holds this process's identity; never throws, safe to call twice. */
  release(): void;
}

/** Who a lock file names: a pid and, when written on Linux, that process's start time. */
export interface LockHolder {
  pid: number;
  /** Field 22 of `/proc/<pid>/stat` (clock ticks since boot); absent in old-format or non-Linux locks. */
  startTime?: number;
}

/** What the lock code needs to know about other processes; injectable so tests can play non-Linux. */
export interface ProcessProbe {
  /** `process.kill(pid, 0)` semantics: true when the pid exists, including someone else's (EPERM). */
  isAlive(pid: number): boolean;
  /**
   * The text of `/proc/<pid>/stat` or `/proc/<pid>/cmdline` (NUL separators turned into spaces);
   * undefined when there is no /proc (not Linux), the process is gone, or the file is hidden.
   */
  readProc(pid: number, entry: 'stat' | 'cmdline'): string | undefined;
}

/** Options of `acquireStateLock`; the defaults suit production. */
export interface StateLockOptions {
  /** How other processes are looked at (default: `process.kill` and /proc). */
  probe?: ProcessProbe;
  /** How long to wait for another starter that is in the middle of a takeover before giving up (default 2000 ms). */
  busyWaitMs?: number;
  /** Age after which a `.takeover` file is itself stale: its holder died mid-takeover (default 30000 ms). */
  staleTakeoverMs?: number;
}

/** What `judgeHolder` found out about a lock's holder. */
export type Verdict =
  | { stale: false; why: 'collector' | 'alive' | 'this-process' }
  | { stale: true; why: 'dead' | 'pid-reused' | 'not-a-collector' };

/** What could be observed about the pid a lock names, at one moment. */
export interface Observed {
  alive: boolean;
  /** From /proc/<pid>/stat; undefined when it could not be read. */
  startTime?: number;
  /** From /proc/<pid>/cmdline; undefined when it could not be read. */
  cmdline?: string;
}

/** The marker written into every lock, so a person reading it knows what wrote it. */
const MARKER = 'm365-forward';
/** A lock file that cannot be parsed is left alone this long: it may be being written (see `createExclusive`). */
const UNPARSEABLE_GRACE_MS = 1000;
/** errno values of link(2) on a file system without hard links (vfat, some FUSE/SMB mounts). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** The real system: `process.kill(pid, 0)` and /proc (Linux). */
export const systemProbe: ProcessProbe = {
  isAlive(pid) {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return errCode(err) === 'EPERM'; // exists, owned by another user
    }
  },
  readProc(pid, entry) {
    try {
      const text = readFileSync(`/proc/${pid}/${entry}`, 'utf8');
      return entry === 'cmdline' ? text.replaceAll('\0', ' ').trim() : text;
    } catch {
      return undefined;
    }
  },
};

/**
 * Reads field 22 (starttime) of a `/proc/<pid>/stat` line. Field 2 is the command name in
 * parentheses and may itself hold spaces and ')', so counting starts after the last ')'
 * (proc(5): "(2) comm %s … (22) starttime %llu").
 */
export function parseStartTime(stat: string | undefined): number | undefined {
  if (stat === undefined) return undefined;
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = stat.slice(close + 1).trim().split(/\s+/); // fields[0] is field 3 (state)
  const raw = fields[22 - 3];
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The lock file's text for a holder. */
export function formatLock(holder: LockHolder): string {
  return JSON.stringify({ pid: holder.pid, ...(holder.startTime === undefined ? {} : { startTime: holder.startTime }), cmd: MARKER }) + '\n';
}

/** Parses a lock file: the JSON format, or the old `"<pid>\n"`. Undefined when it names no valid pid. */
export function parseLock(text: string): LockHolder | undefined {
  const t = text.trim();
  if (/^\d+$/.test(t)) return validPid(Number(t)) ? { pid: Number(t) } : undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(t);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const { pid, startTime } = doc as Record<string, unknown>;
  if (typeof pid !== 'number' || !validPid(pid)) return undefined;
  if (typeof startTime === 'number' && Number.isSafeInteger(startTime) && startTime >= 0) return { pid, startTime };
  return { pid };
}

/**
 * Whether a command line is an m365-forward collector: it runs as
 * `node --import tsx …/src/cli.ts run …`, or through a bin named `m365-forward` (the shebang puts
 * the bin's path on the command line).
 */
export function looksLikeCollector(cmdline: string): boolean {
  // The bin (any path with the package's name), or the clone's launcher, bundle or sources.
  return ['m365-forward', 'src/cli.ts', 'src/bin.mjs', '.build/cli.mjs'].some((s) => cmdline.includes(s));
}

/**
 * Decides whether a lock may be taken over. Stale only when the holder is provably not a
 * collector holding it now: its pid is dead; or (Linux) the pid is alive but started at another
 * time than recorded (the pid was reused, e.g. pid 1 in a restarted container) or runs something
 * that is not m365-forward. Anything that cannot be checked counts as a live holder: a wrong
 * "stale" lets two collectors write one state file, a wrong "live" only stops a start with an
 * error that names the pid.
 */
export function judgeHolder(holder: LockHolder, self: LockHolder, seen: Observed): Verdict {
  if (holder.pid === self.pid) {
    // Our pid: either this very process locked it already, or a predecessor that had our pid.
    if (holder.startTime !== undefined && holder.startTime === self.startTime) return { stale: false, why: 'this-process' };
    return { stale: true, why: 'pid-reused' };
  }
  if (!seen.alive) return { stale: true, why: 'dead' };
  if (holder.startTime !== undefined && seen.startTime !== undefined && holder.startTime !== seen.startTime) {
    return { stale: true, why: 'pid-reused' };
  }
  if (seen.cmdline !== undefined && !looksLikeCollector(seen.cmdline)) return { stale: true, why: 'not-a-collector' };
  return { stale: false, why: seen.cmdline === undefined ? 'alive' : 'collector' };
}

/**
 * Takes `<stateFile>.lock` for this process, or throws CollectorError('STATE_IO', …, { fatal: true })
 * with one line saying why: the pid of the live collector that holds it and what to do, the lock
 * path being a directory, the folder not being writable, or the errno and path of anything else.
 * Synchronous; it waits (blocking, at most `busyWaitMs`) only while another starter is inside its
 * takeover. Taking the same lock twice in one process is refused on Linux (same pid and start
 * time); without /proc it cannot be told from a predecessor that had our pid, and is taken over.
 */
export function acquireStateLock(stateFile: string, opts: StateLockOptions = {}): StateLock {
  const lockFile = `${stateFile}.lock`;
  const probe = opts.probe ?? systemProbe;
  const staleTakeoverMs = opts.staleTakeoverMs ?? 30_000;
  const self: LockHolder = { pid: process.pid };
  const ownStart = parseStartTime(probe.readProc(process.pid, 'stat'));
  if (ownStart !== undefined) self.startTime = ownStart;
  const content = formatLock(self);

  const folder = path.dirname(lockFile);
  try {
    mkdirSync(folder, { recursive: true });
  } catch (err) {
    throw folderError(lockFile, folder, err);
  }

  const giveUpAt = performance.now() + (opts.busyWaitMs ?? 2000);
  let waitingFor: Busy = 'changing';
  for (let first = true; ; first = false) {
    if (!first && performance.now() > giveUpAt) throw busyError(lockFile, waitingFor);
    waitingFor = 'changing';
    if (createExclusive(lockFile, content)) return heldLock(lockFile, content);
    const current = readLock(lockFile);
    if (current === undefined) continue; // released between our attempt and our read: try again
    const holder = parseLock(current.raw);
    if (holder === undefined) {
      // Empty or garbage. Only a lock written without link(2) can be seen half-written (see
      // createExclusive), and only for an instant: give it a moment before calling it stale.
      if (Math.abs(Date.now() - current.mtimeMs) < UNPARSEABLE_GRACE_MS) {
        waitingFor = 'unreadable';
        sleepSync(10);
        continue;
      }
    } else {
      const verdict = judgeHolder(holder, self, observe(probe, holder.pid));
      if (!verdict.stale) throw heldError(stateFile, holder.pid, verdict.why === 'this-process');
    }
    const outcome = takeOver(lockFile, current.raw, content, staleTakeoverMs);
    if (outcome === 'won') return heldLock(lockFile, content);
    if (outcome === 'busy') {
      waitingFor = 'takeover';
      sleepSync(5);
    }
    // 'changed': the lock changed under us; look at it again.
  }
}

/** Looks at a pid; reads /proc only while it is alive, and re-checks liveness when /proc says nothing. */
function observe(probe: ProcessProbe, pid: number): Observed {
  if (!probe.isAlive(pid)) return { alive: false };
  const stat = probe.readProc(pid, 'stat');
  const cmdline = probe.readProc(pid, 'cmdline');
  // /proc/<pid> vanishing between kill(0) and the read means it just exited.
  if (stat === undefined && !probe.isAlive(pid)) return { alive: false };
  const seen: Observed = { alive: true };
  const startTime = parseStartTime(stat);
  if (startTime !== undefined) seen.startTime = startTime;
  if (cmdline !== undefined) seen.cmdline = cmdline;
  return seen;
}

/**
 * Creates the lock file with its full content, only if no lock file exists. The content goes
 * into a private temporary file first, which link(2) then puts at the lock's name: link fails with
 * EEXIST when the name exists, exactly like O_EXCL, but the lock never exists half-written, so a
 * reader never mistakes a lock being created for an empty, stale one (open(2), O_EXCL: "create a
 * unique file on the same filesystem … and use link(2) to make a link to the lockfile").
 * A file system without hard links falls back to open(O_CREAT|O_EXCL) and a write; readers
 * then allow a moment for the content (UNPARSEABLE_GRACE_MS).
 */
function createExclusive(lockFile: string, content: string): boolean {
  const tmp = privateName(lockFile, 'new');
  try {
    writeFileSync(tmp, content, { flag: 'wx', mode: 0o644 }); // holds no secret; lets any user see the holder
  } catch (err) {
    throw ioError('create', lockFile, err);
  }
  try {
    linkSync(tmp, lockFile);
    return true;
  } catch (err) {
    const code = errCode(err);
    if (code === 'EEXIST') return false;
    if (!NO_HARD_LINKS.has(code)) throw ioError('create', lockFile, err);
  } finally {
    unlinkQuiet(tmp);
  }
  try {
    writeFileSync(lockFile, content, { flag: 'wx', mode: 0o644 });
    return true;
  } catch (err) {
    if (errCode(err) === 'EEXIST') return false;
    throw ioError('create', lockFile, err);
  }
}

/**
 * Replaces a stale lock with ours, serialised by `<lock>.takeover` (created with O_EXCL).
 *
 * Why two starters can never both win: the lock name is only ever filled by an exclusive create
 * (link or O_EXCL), so at most one starter fills it each time it is empty. It is only emptied by
 * (a) its owner's release, which removes only a lock holding the owner's own identity, or (b) a
 * starter holding the takeover file, which removes it only after re-reading it *while holding
 * the takeover file* and finding the very text it judged stale. Takeovers are one at a time, so a
 * takeover can never remove a lock that another takeover has just created: that one would no
 * longer read as the stale text. A starter that lost creates nothing, re-reads the lock, finds
 * the winner's live collector and stops. (The old code removed the lock after judging it outside
 * any mutual exclusion, so a slow starter could remove the lock a fast one had just created; it
 * let two starters win in 1 of 40 trials.)
 *
 * The takeover file's holder may die inside this microsecond section: then the file is older than
 * `staleTakeoverMs` and is removed. Removing by rename-then-check (`removeIfUnchanged`) means a
 * takeover file that was replaced meanwhile is put back instead of lost.
 */
function takeOver(lockFile: string, staleRaw: string, content: string, staleTakeoverMs: number): 'won' | 'changed' | 'busy' {
  const mutex = `${lockFile}.takeover`;
  const token = `${process.pid} ${randomBytes(8).toString('hex')}\n`;
  try {
    writeFileSync(mutex, token, { flag: 'wx', mode: 0o644 });
  } catch (err) {
    if (errCode(err) !== 'EEXIST') throw ioError('create', mutex, err);
    return clearStaleTakeover(mutex, staleTakeoverMs) ? 'changed' : 'busy';
  }
  try {
    const now = readLock(lockFile);
    if (now === undefined || now.raw !== staleRaw) return 'changed';
    if (!removeIfUnchanged(lockFile, staleRaw)) return 'changed';
    return createExclusive(lockFile, content) ? 'won' : 'changed';
  } finally {
    removeIfUnchanged(mutex, token);
  }
}

/** Removes a takeover file left by a starter that died mid-takeover; true when it is gone now. */
function clearStaleTakeover(mutex: string, staleTakeoverMs: number): boolean {
  let mtimeMs: number;
  let raw: string;
  try {
    mtimeMs = lstatSync(mutex).mtimeMs;
    if (Math.abs(Date.now() - mtimeMs) < staleTakeoverMs) return false; // a live takeover: wait for it (abs: a clock set back)
    raw = readFileSync(mutex, 'utf8');
  } catch (err) {
    if (errCode(err) === 'ENOENT') return true;
    throw ioError('read', mutex, err);
  }
  removeIfUnchanged(mutex, raw);
  return true;
}

/**
 * Removes `file` only if it holds `expected`. Unlinking by name after a check could remove a file
 * that replaced the checked one in between; instead the file is first moved to a private name
 * (atomic), checked there, and put back (link: never over a newer one) when it is not ours to remove.
 */
function removeIfUnchanged(file: string, expected: string): boolean {
  const aside = privateName(file, 'old');
  try {
    renameSync(file, aside);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return false;
    throw ioError('remove', file, err);
  }
  let raw: string | undefined;
  try {
    raw = readFileSync(aside, 'utf8');
  } catch {
    raw = undefined;
  }
  if (raw === expected) {
    unlinkQuiet(aside);
    return true;
  }
  try {
    linkSync(aside, file);
    unlinkQuiet(aside);
  } catch (err) {
    if (errCode(err) === 'EEXIST') unlinkQuiet(aside);
    else if (!existsSync(file)) renameSync(aside, file); // no hard links here: move it back
  }
  return false;
}

/** Reads the lock; undefined when there is none. Anything but a regular file at the lock's name is an error. */
function readLock(lockFile: string): { raw: string; mtimeMs: number } | undefined {
  try {
    const st = lstatSync(lockFile);
    if (st.isDirectory()) throw dirError(lockFile);
    if (!st.isFile()) throw notAFileError(lockFile);
    return { raw: readFileSync(lockFile, 'utf8'), mtimeMs: st.mtimeMs };
  } catch (err) {
    if (err instanceof CollectorError) throw err;
    if (errCode(err) === 'ENOENT') return undefined;
    if (errCode(err) === 'EISDIR') throw dirError(lockFile); // a symlink to a directory
    throw ioError('read', lockFile, err);
  }
}

function heldLock(file: string, content: string): StateLock {
  let held = true;
  return {
    file,
    release() {
      if (!held) return;
      held = false;
      try {
        removeIfUnchanged(file, content);
      } catch {
        // Nothing to do about it at shutdown; a lock left behind is stale and taken over next time.
      }
    },
  };
}

function heldError(stateFile: string, pid: number, self: boolean): CollectorError {
  const message = self
    ? `state file ${stateFile} is already locked by this process (pid ${pid}); release the first lock before taking it again`
    : `state file ${stateFile} is in use by another m365-forward (pid ${pid}); stop it, or give each config its own state.path`;
  return new CollectorError('STATE_IO', message, { fatal: true });
}

function dirError(lockFile: string): CollectorError {
  return new CollectorError(
    'STATE_IO',
    `lock path ${lockFile} is a directory, not a lock file; remove it (m365-forward creates the file itself) or set another state.path`,
    { fatal: true },
  );
}

/** What a starter that gave up was waiting for. */
type Busy = 'takeover' | 'unreadable' | 'changing';

function notAFileError(lockFile: string): CollectorError {
  return new CollectorError(
    'STATE_IO',
    `lock path ${lockFile} is not a regular file (a symbolic link or a special file); remove it (m365-forward creates the file itself) or set another state.path`,
    { fatal: true },
  );
}

function busyError(lockFile: string, waitingFor: Busy): CollectorError {
  const message = {
    takeover: `cannot take lock file ${lockFile}: another m365-forward is taking it over right now (${lockFile}.takeover exists); retry in a moment, or remove ${lockFile}.takeover if no other m365-forward is starting`,
    unreadable: `cannot take lock file ${lockFile}: it names no process and was written moments ago; retry in a moment, or remove it if no other m365-forward is starting`,
    changing: `cannot take lock file ${lockFile}: it kept changing while other m365-forward processes started; retry in a moment`,
  }[waitingFor];
  return new CollectorError('STATE_IO', message, { fatal: true });
}

function folderError(lockFile: string, folder: string, err: unknown): CollectorError {
  const code = errCode(err);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return notWritable(lockFile, folder, code);
  return new CollectorError('STATE_IO', `cannot create the state folder ${folder} for lock file ${lockFile}: ${oneLine(err)}`, { fatal: true });
}

function ioError(action: 'create' | 'read' | 'remove', target: string, err: unknown): CollectorError {
  const code = errCode(err);
  if (code === 'EISDIR') return dirError(target);
  if (action !== 'read' && (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')) return notWritable(target, path.dirname(target), code);
  return new CollectorError('STATE_IO', `cannot ${action} lock file ${target}: ${oneLine(err)}`, { fatal: true });
}

function notWritable(lockFile: string, folder: string, code: string): CollectorError {
  const what = code === 'EROFS' ? 'is on a read-only file system' : 'is not writable';
  return new CollectorError(
    'STATE_IO',
    `cannot write lock file ${lockFile}: the folder ${folder} ${what} (${code}); make it writable for the user running m365-forward, or set state.path to a writable place`,
    { fatal: true },
  );
}

/** `<file>.<pid>-<random>.<kind>`: a name no other process or call uses. */
function privateName(file: string, kind: 'new' | 'old'): string {
  return `${file}.${process.pid}-${randomBytes(6).toString('hex')}.${kind}`;
}

function unlinkQuiet(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // already gone
  }
}

/** Blocks the thread: acquireStateLock is synchronous, and the waits are a few milliseconds. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function validPid(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0;
}

function errCode(err: unknown): string {
  return String((err as NodeJS.ErrnoException | undefined)?.code ?? '');
}

/** Node's errno message ("ENOSPC: no space left on device, open '/x'") on one line. */
function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
}
