import type { RoutedRecord, Sink } from './types.ts';

/**
 * Writes one JSON line per record to stdout: {"tag","time","record"}. For trying the collector
 * without a shipper, and for piping into anything that reads NDJSON. A record counts as delivered
 * once the stream has accepted the write (and drained, when it pushes back).
 */
export class StdoutSink implements Sink {
  readonly description = 'stdout';
  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {}

  async send(records: RoutedRecord[], signal: AbortSignal): Promise<void> {
    let buf = '';
    for (const r of records) {
      buf += JSON.stringify({ tag: r.tag, time: new Date(r.timeMs).toISOString(), record: r.record }) + '\n';
    }
    signal.throwIfAborted();
    await new Promise<void>((resolve, reject) => {
      this.out.write(buf, (err) => (err ? reject(err) : resolve()));
    });
  }

  async probe(record: RoutedRecord): Promise<void> {
    await this.send([record], new AbortController().signal);
  }

  async close(): Promise<void> {}
}
