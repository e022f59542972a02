import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import path from 'node:path';
import { CollectorError } from '../errors.ts';
import type { FeedState, RetryEntry } from '../polling/checkpoint.ts';

/**
 * The state file: one JSON document holding every feed's checkpoint, keyed "tenant/contentType".
 * Written atomically (temp file, fsync, rename, fsync of the folder) so a crash at any moment
 * leaves either the old or the new state, never a torn one. A file that cannot be read or
 * understood stops the collector with an error naming what is wrong: it is never overwritten,
 * since it holds the only record of what was already delivered.
 */
export const STATE_VERSION = 1;

export interface StateFile {
  version: number;
  feeds: Record<string, FeedState>;
}

export function feedKey(tenantName: string, contentType: string): string {
  return `${tenantName}/${contentType}`;
}

export class StateStore {
  /** The last write in the chain (never rejects: errors go to that write's callers). */
  #tail: Promise<void> = Promise.resolve();
  /** A write that has not started yet: a later save() joins it instead of queueing another. */
  #queued?: Promise<void>;
  #locked?: string;
  constructor(readonly file: string) {}

  /**
   * Takes the state file for this process: `<file>.lock` holding our pid, created exclusively.
   * Two collectors on one state file would overwrite each other's checkpoints (each writes the
   * whole file from its memory), so a second one stops with a clear error. A lock left by a
   * process that no longer exists (kill -9, power loss) is taken over.
   */
  lock(): void {
    const lockFile = `${this.file}.lock`;
    mkdirSync(path.dirname(this.file), { recursive: true });
    for (let tries = 0; tries < 2; tries++) {
      try {
        writeFileSync(lockFile, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
        this.#locked = lockFile;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new CollectorError('STATE_IO', `cannot create lock file ${lockFile}: ${(err as Error).message}`, { fatal: true });
        }
      }
      const pid = Number.parseInt(readFileSync(lockFile, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new CollectorError(
          'STATE_IO',
          `state file ${this.file} is in use by another m365-forward (pid ${pid}); stop it, or give each config its own state.path`,
          { fatal: true },
        );
      }
      rmSync(lockFile, { force: true }); // stale: its process is gone
    }
    throw new CollectorError('STATE_IO', `cannot take lock file ${lockFile}`, { fatal: true });
  }

  /** Releases the lock taken by lock(), if this process holds it. */
  unlock(): void {
    if (!this.#locked) return;
    try {
      if (readFileSync(this.#locked, 'utf8').trim() === String(process.pid)) rmSync(this.#locked, { force: true });
    } catch {
      // already gone
    }
    this.#locked = undefined;
  }

  /** Reads the state; a missing file is an empty state. */
  load(): StateFile {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: STATE_VERSION, feeds: {} };
      throw new CollectorError('STATE_IO', `cannot read state file ${this.file}: ${(err as Error).message}`, { fatal: true });
    }
    return parseState(text, this.file);
  }

  /**
   * Writes the state atomically; resolves once a write that includes the state as it is now has
   * reached the disk. Writes never overlap, and saves that arrive while one is running are
   * coalesced into the next write (the state is serialized when that write starts), so many
   * blobs acked at once cost one fsync, not one each.
   */
  save(state: StateFile): Promise<void> {
    if (this.#queued) return this.#queued;
    const run = this.#tail.then(() => {
      this.#queued = undefined;
      return writeAtomic(this.file, JSON.stringify(state) + '\n');
    });
    this.#queued = run;
    this.#tail = run.catch(() => {});
    return run;
  }
}

/**
 * temp file → write → fsync → rename → fsync(folder). Asynchronous, so acks keep being processed
 * during the fsync and the saves they cause coalesce into the next write.
 */
async function writeAtomic(file: string, text: string): Promise<void> {
  const dir = path.dirname(file);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
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
  } catch (err) {
    // Fatal: carrying on would deliver records whose checkpoint cannot be kept (re-sent after a restart).
    throw new CollectorError('STATE_IO', `cannot write state file ${file}: ${(err as Error).message}`, { fatal: true, cause: err });
  }
}

/** Parses and checks a state document; every problem names the key that is wrong. */
export function parseState(text: string, file: string): StateFile {
  const bad = (what: string) =>
    new CollectorError(
      'STATE_CORRUPT',
      `state file ${file} is not usable: ${what}. It was left untouched; fix or move it away (the collector then starts from polling.initial_lookback and may re-send or miss content).`,
      { fatal: true },
    );
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw bad(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('the top level is not an object');
  const d = doc as Record<string, unknown>;
  if (d.version !== STATE_VERSION) throw bad(`version is ${JSON.stringify(d.version)}, this collector reads version ${STATE_VERSION}`);
  if (typeof d.feeds !== 'object' || d.feeds === null || Array.isArray(d.feeds)) throw bad('"feeds" is not an object');
  const feeds: Record<string, FeedState> = {};
  for (const [key, raw] of Object.entries(d.feeds as Record<string, unknown>)) {
    const at = `feeds["${key}"]`;
    if (typeof raw !== 'object' || raw === null) throw bad(`${at} is not an object`);
    const f = raw as Record<string, unknown>;
    const num = (k: string) => {
      if (typeof f[k] !== 'number' || !Number.isFinite(f[k])) throw bad(`${at}.${k} is not a number`);
      return f[k] as number;
    };
    if (typeof f.done !== 'object' || f.done === null || Array.isArray(f.done)) throw bad(`${at}.done is not an object`);
    for (const [id, v] of Object.entries(f.done as Record<string, unknown>)) {
      if (typeof v !== 'number') throw bad(`${at}.done["${id}"] is not a number`);
    }
    if (!Array.isArray(f.retry)) throw bad(`${at}.retry is not a list`);
    (f.retry as unknown[]).forEach((r, i) => {
      const e = r as Record<string, unknown>;
      for (const k of ['contentType', 'contentId', 'contentUri', 'contentCreated', 'contentExpiration', 'lastError']) {
        if (typeof e?.[k] !== 'string') throw bad(`${at}.retry[${i}].${k} is not a string`);
      }
      for (const k of ['attempts', 'nextAttemptAt']) {
        if (typeof e?.[k] !== 'number') throw bad(`${at}.retry[${i}].${k} is not a number`);
      }
    });
    feeds[key] = {
      cursor: num('cursor'),
      done: f.done as Record<string, number>,
      retry: f.retry as RetryEntry[],
      blobsDelivered: num('blobsDelivered'),
      recordsDelivered: num('recordsDelivered'),
      lost: num('lost'),
      ...(typeof f.lastError === 'string' ? { lastError: f.lastError } : {}),
    };
  }
  return { version: STATE_VERSION, feeds };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}
