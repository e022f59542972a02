import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { FluentClient, FluentSocketEvent } from '@fluent-org/logger';
import type { ForwardOutputConfig } from '../config/schema.ts';
import { CollectorError, describeError } from '../errors.ts';
import { backoffDelay } from '../polling/backoff.ts';
import type { Logger } from '../support/logger.ts';
import { sleep } from '../support/sleep.ts';
import { buildFrames, type Frame } from './frames.ts';
import type { RoutedRecord, Sink } from './types.ts';

/**
 * Forward output to Fluent Bit's in_forward (or Vector's fluent source), with acks.
 *
 * How the logger library is driven (reference §4.4): in PackedForward mode it packs everything
 * queued for a tag into one packet per flush and gives all of it one promise and one ack. So one
 * frame is emitted at a time, synchronously, into an empty send queue, and flushed; the next frame
 * is emitted only once the queue is empty again. That makes every packet exactly one of our
 * frames, capped by buildFrames(). Acks run concurrently, at most maxFramesInFlight of them.
 *
 * Failures: a frame whose ack times out or whose socket dies is re-sent (at least once). The
 * client is recreated after a failure, since it can end up FATAL (Vector's `{}` reject) and never
 * reconnect on its own. Nothing is queued without bound: send() only returns when acked.
 */
export class ForwardSink implements Sink {
  readonly description: string;
  #client: FluentClient;
  #emitLock: Promise<void> = Promise.resolve();
  #inFlight = 0;
  #waiters: Array<() => void> = [];
  #generation = 0;
  #closed = false;
  /** Counters for status records and tests. */
  readonly stats = { framesSent: 0, framesAcked: 0, framesRetried: 0, recordsAcked: 0 };

  constructor(
    private readonly cfg: ForwardOutputConfig,
    private readonly log: Logger,
  ) {
    this.description = cfg.unixSocket
      ? `forward unix:${cfg.unixSocket}`
      : `forward ${cfg.tls ? 'tls://' : 'tcp://'}${cfg.host}:${cfg.port}`;
    this.#client = this.#createClient();
  }

  #createClient(): FluentClient {
    const c = this.cfg;
    let tls: ConnectionOptions | undefined;
    if (c.tls) {
      tls = {
        ca: c.tls.caFile ? readFileSync(c.tls.caFile) : undefined,
        cert: c.tls.certFile ? readFileSync(c.tls.certFile) : undefined,
        key: c.tls.keyFile ? readFileSync(c.tls.keyFile) : undefined,
        servername: c.tls.serverName ?? (c.host.match(/^[\d.:]+$/) ? undefined : c.host),
        rejectUnauthorized: c.tls.verify,
      };
    }
    const client = new FluentClient(null, {
      eventMode: 'PackedForward',
      socket: {
        host: c.host,
        port: c.port,
        path: c.unixSocket,
        tls,
        // No idle timeout: a quiet feed must not put the socket to sleep between polls.
        timeout: -1,
        reconnect: { backoff: 2, delay: 500, maxDelay: 30_000 },
        // Stop writing while the kernel buffer is full instead of piling data into Node's buffer.
        notWritableWhenDraining: true,
      },
      ack: { ackTimeout: c.ackTimeoutMs },
      milliseconds: true,
      flushInterval: 0,
      disconnect: { waitForPending: false, socketDisconnectDelay: 0 },
    });
    const gen = ++this.#generation;
    client.socketOn(FluentSocketEvent.ERROR, (err: Error) => {
      if (gen === this.#generation) this.log.warn('forward connection error', { output: this.description, error: err.message });
    });
    return client;
  }

  async #acquireSlot(signal: AbortSignal): Promise<void> {
    while (this.#inFlight >= this.cfg.maxFramesInFlight) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
      signal.throwIfAborted();
    }
    this.#inFlight++;
  }

  #releaseSlot(): void {
    this.#inFlight--;
    this.#waiters.shift()?.();
  }

  /** Emits one frame as exactly one packet; resolves with the promise of its ack. */
  async #emitFrame(frame: Frame, signal: AbortSignal): Promise<Promise<void>> {
    const prev = this.#emitLock;
    let release!: () => void;
    this.#emitLock = new Promise((r) => (release = r));
    await prev;
    try {
      const client = this.#client;
      // Wait until whatever was emitted before has left the send queue, so nothing merges.
      await this.#drained(client, signal);
      let ack: Promise<void> | undefined;
      for (const e of frame.entries) {
        const p = client.emit(frame.tag, e.record, e.time);
        ack ??= p; // every entry of a tag in one flush shares one promise
        p.catch(() => {}); // handled through `ack`; the others are the same promise
      }
      await this.#drained(client, signal);
      this.stats.framesSent++;
      return ack!;
    } finally {
      release();
    }
  }

  async #drained(client: FluentClient, signal: AbortSignal): Promise<void> {
    for (let i = 0; client.sendQueueLength > 0; i++) {
      signal.throwIfAborted();
      if (client !== this.#client) throw new CollectorError('SINK_ERROR', 'forward client was replaced');
      // flush() writes on the next tick when the socket is writable; only poll while it is not
      // (connecting, reconnecting, or the kernel buffer is full).
      await client.flush();
      if (client.sendQueueLength > 0) await sleep(Math.min(1 + i, 50), signal);
    }
  }

  async #sendFrame(frame: Frame, signal: AbortSignal): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      if (this.#closed) throw new CollectorError('SINK_ERROR', 'forward output is closed');
      await this.#acquireSlot(signal);
      const client = this.#client;
      try {
        const ack = await this.#emitFrame(frame, signal);
        await ack;
        this.stats.framesAcked++;
        this.stats.recordsAcked += frame.entries.length;
        return;
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        this.stats.framesRetried++;
        this.log.warn('forward frame not acked; will re-send', {
          output: this.description,
          tag: frame.tag,
          records: frame.entries.length,
          attempt: attempt + 1,
          error: describeError(err),
        });
        await this.#replaceClient(client);
      } finally {
        this.#releaseSlot();
      }
      await sleep(backoffDelay(attempt, { baseMs: 500, maxMs: 30_000 }), signal);
    }
  }

  /** Drops a client that failed (it may be FATAL or hold a half-dead socket) and starts a new one. */
  async #replaceClient(failed: FluentClient): Promise<void> {
    if (failed !== this.#client || this.#closed) return;
    this.#client = this.#createClient();
    await failed.shutdown().catch(() => {});
  }

  async send(records: RoutedRecord[], signal: AbortSignal): Promise<void> {
    if (records.length === 0) return;
    const frames = buildFrames(records, this.cfg.maxFrameBytes);
    await Promise.all(frames.map((f) => this.#sendFrame(f, signal)));
  }

  async probe(record: RoutedRecord, timeoutMs: number): Promise<void> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new CollectorError('SINK_ACK_TIMEOUT', `no ack from ${this.description} within ${timeoutMs} ms`)), timeoutMs);
    try {
      const [frame] = buildFrames([record], this.cfg.maxFrameBytes);
      await this.#acquireSlot(ac.signal);
      try {
        const ack = await this.#emitFrame(frame!, ac.signal);
        await Promise.race([ack, new Promise((_, reject) => ac.signal.addEventListener('abort', () => reject(ac.signal.reason)))]);
      } finally {
        this.#releaseSlot();
      }
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w();
    await this.#client.shutdown().catch(() => {});
  }
}
