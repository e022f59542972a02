import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import path from 'node:path';
import { CollectorError } from '../errors.ts';

/**
 * The dead-letter file, `<state>.deadletter.ndjson`: records that could not be sent at all
 * (larger than a frame may be, nested deeper than Fluent Bit keeps, not a JSON object), one JSON
 * line each, so that one bad record never costs the rest of its blob (DESIGN guarantee 4) and
 * nothing is dropped silently. A line is
 *   {"time","tenant","contentType","contentId","contentCreated","tag","reason","id","record":<exact JSON>}
 * with `record` last, spliced in byte for byte. The lines are on disk (fsync) before the blob
 * counts as delivered. `m365-forward deadletter list|resend` reads them.
 */
export function deadLetterPath(stateFile: string): string {
  return `${stateFile}.deadletter.ndjson`;
}

export interface DeadLetterEntry {
  time: string;
  tenant: string;
  contentType: string;
  contentId: string;
  /** The blob's contentCreated: the record's time when its own CreationTime cannot be used. */
  contentCreated: string;
  tag: string;
  reason: string;
  id?: string;
  /** The record's exact bytes. */
  record: Buffer;
}

const RECORD_KEY = ',"record":';

export function formatDeadLetter(e: DeadLetterEntry): Buffer {
  const { record, ...meta } = e;
  const head = JSON.stringify(meta);
  return Buffer.concat([Buffer.from(head.slice(0, -1) + RECORD_KEY), record, Buffer.from('}\n')]);
}

/** Parses one line; the record's bytes are taken exactly as written (never re-serialised). */
export function parseDeadLetter(line: Buffer, where: string): DeadLetterEntry {
  const text = line.toString('utf8');
  // Metadata values are JSON strings, whose quotes are escaped: the first `,"record":` is the key.
  const at = text.indexOf(RECORD_KEY);
  if (at < 0 || !text.endsWith('}')) throw new CollectorError('STATE_CORRUPT', `${where} is not a dead-letter line`, { fatal: true });
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(text.slice(0, at) + '}');
  } catch {
    throw new CollectorError('STATE_CORRUPT', `${where} is not a dead-letter line`, { fatal: true });
  }
  for (const k of ['time', 'tenant', 'contentType', 'contentId', 'contentCreated', 'tag', 'reason']) {
    if (typeof meta[k] !== 'string') throw new CollectorError('STATE_CORRUPT', `${where}: "${k}" is missing`, { fatal: true });
  }
  const start = Buffer.byteLength(text.slice(0, at + RECORD_KEY.length));
  return { ...(meta as Omit<DeadLetterEntry, 'record'>), record: line.subarray(start, line.length - 1) };
}

export class DeadLetterFile {
  constructor(readonly file: string) {}

  /** Appends entries and fsyncs; throws STATE_IO when that fails (the blob then is not done). */
  async append(entries: DeadLetterEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const data = Buffer.concat(entries.map(formatDeadLetter));
    try {
      const fh = await open(this.file, 'a', 0o600);
      const before = (await fh.stat()).size;
      try {
        // writeFile, not write: write() may take only part of it (a full disk gives a short
        // write, not an error), and the blob must not count as done on a torn line.
        await fh.writeFile(data);
        await fh.datasync();
      } catch (err) {
        // Leave no torn line behind for the next append to join onto.
        await fh.truncate(before).catch(() => {});
        throw err;
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw new CollectorError('STATE_IO', `cannot write dead-letter file ${this.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { fatal: true, cause: err });
    }
  }

  /** Every entry; a missing file has none. A torn last line (crash mid-append) is skipped. */
  read(): DeadLetterEntry[] {
    let data: Buffer;
    try {
      data = readFileSync(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new CollectorError('STATE_IO', `cannot read dead-letter file ${this.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { fatal: true });
    }
    const out: DeadLetterEntry[] = [];
    let start = 0;
    let n = 0;
    for (let i = data.indexOf(10); i >= 0; i = data.indexOf(10, start)) {
      n++;
      if (i > start) out.push(parseDeadLetter(data.subarray(start, i), `${this.file} line ${n}`));
      start = i + 1;
    }
    return out;
  }

  /** Replaces the file's content with these entries, atomically. */
  rewrite(entries: DeadLetterEntry[]): Promise<void> {
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      for (const e of entries) writeSync(fd, formatDeadLetter(e));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return rename(tmp, this.file).then(async () => {
      const dh = await open(path.dirname(this.file), 'r');
      await dh.sync().finally(() => dh.close());
    });
  }
}
