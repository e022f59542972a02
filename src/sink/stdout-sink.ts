import { CollectorError } from '../errors.ts';
import type { RoutedRecord, Sink } from './types.ts';

/**
 * Writes one JSON line per record to stdout: {"tag","time","record"}. For trying the collector
 * without a shipper, and for piping into anything that reads NDJSON. A record counts as delivered
 * once the stream has accepted the write (and drained, when it pushes back).
 */
export class StdoutSink implements Sink {
  readonly description = 'stdout';
  #closedBy?: Error;
  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {
    // A reader that goes away (`| head`) makes writes fail with EPIPE; without a listener the
    // stream's 'error' event would crash the process. Remember it and fail the sends instead:
    // nothing written after that point counts as delivered.
    out.on('error', (err: Error) => {
      this.#closedBy = err;
    });
  }

  async send(records: RoutedRecord[], signal: AbortSignal): Promise<void> {
    let buf = '';
    for (const r of records) {
      buf += JSON.stringify({ tag: r.tag, time: new Date(r.timeMs).toISOString(), record: r.record }) + '\n';
    }
    signal.throwIfAborted();
    if (this.#closedBy) throw new CollectorError('SINK_ERROR', `stdout is closed (${this.#closedBy.message})`, { fatal: true });
    await new Promise<void>((resolve, reject) => {
      this.out.write(buf, (err) => (err ? reject(new CollectorError('SINK_ERROR', `cannot write to stdout: ${err.message}`, { fatal: true, cause: err })) : resolve()));
    });
  }

  async probe(record: RoutedRecord): Promise<void> {
    await this.send([record], new AbortController().signal);
  }

  async close(): Promise<void> {}
}
