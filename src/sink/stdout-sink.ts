import { CollectorError } from '../errors.ts';
import type { EncodedEntry, Sink, SinkHealth } from './types.ts';

/**
 * Writes one JSON line per record to stdout: {"tag","time","record"} with `record` the record's
 * exact JSON text (record/encode.ts builds the lines). For trying the collector without a shipper,
 * and for piping into anything that reads NDJSON. A record counts as delivered once the stream has
 * accepted the write (and drained, when it pushes back).
 */
export class StdoutSink implements Sink {
  readonly description = 'stdout';
  readonly wire = 'json-line' as const;
  #closedBy?: Error;
  #waitingSince?: number;
  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {
    // A reader that goes away (`| head`) makes writes fail with EPIPE; without a listener the
    // stream's 'error' event would crash the process. Remember it and fail the sends instead:
    // nothing written after that point counts as delivered.
    out.on('error', (err: Error) => {
      this.#closedBy = err;
    });
  }

  async send(entries: EncodedEntry[], signal: AbortSignal, onQueued?: () => void): Promise<void> {
    onQueued?.();
    if (entries.length === 0) return;
    signal.throwIfAborted();
    if (this.#closedBy) throw new CollectorError('SINK_ERROR', `stdout is closed (${this.#closedBy.message})`, { fatal: true });
    const buf = Buffer.concat(entries.map((e) => e.bytes));
    this.#waitingSince ??= performance.now();
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        this.out.write(buf, (err) => {
          signal.removeEventListener('abort', onAbort);
          if (err) reject(new CollectorError('SINK_ERROR', `cannot write to stdout: ${err.message}`, { fatal: true, cause: err }));
          else resolve();
        });
      });
    } finally {
      this.#waitingSince = undefined;
    }
  }

  health(): SinkHealth {
    const waiting = this.#waitingSince !== undefined;
    return { waiting, stalledMs: waiting ? performance.now() - this.#waitingSince! : 0, ...(this.#closedBy ? { lastError: `stdout is closed (${this.#closedBy.message})` } : {}) };
  }

  async close(): Promise<void> {}
}
