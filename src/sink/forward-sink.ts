import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { FluentClient, FluentSocketEvent } from '@fluent-org/logger';
import type { ForwardOutputConfig } from '../config/schema.ts';
import { CollectorError, describeError } from '../errors.ts';
import { backoffDelay } from '../polling/backoff.ts';
import type { Logger } from '../support/logger.ts';
import { Semaphore } from '../support/semaphore.ts';
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
  /** Created on first use: a sink that never sends (a run refused at start) never connects. */
  #client?: FluentClient;
  #emitLock: Promise<void> = Promise.resolve();
  /** Frames sent and not yet acked, at most maxFramesInFlight. */
  readonly #slots: Semaphore;
  /** Clients the library has put in its FATAL state (they never reconnect by themselves). */
  readonly #fatal = new WeakSet<FluentClient>();
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
    this.#slots = new Semaphore(cfg.maxFramesInFlight);
  }

  #current(): FluentClient {
    this.#client ??= this.#createClient();
    return this.#client;
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
    client.socketOn(FluentSocketEvent.ERROR, (err: Error) => {
      // These put the library's socket in FATAL: it will never reconnect (Vector's `{}` reject,
      // an unexpected HELO from a shared_key input). Mark it so the next send replaces it.
      if (['AuthError', 'UnexpectedMessageError', 'FatalSocketError'].includes(err.name)) this.#fatal.add(client);
      if (client === this.#client) this.log.warn('forward connection error', { output: this.description, error: err.message });
    });
    return client;
  }

  /** Emits one frame as exactly one packet; resolves with the client used and its ack promise. */
  async #emitFrame(frame: Frame, signal: AbortSignal): Promise<{ client: FluentClient; ack: Promise<void> }> {
    const prev = this.#emitLock;
    let release!: () => void;
    this.#emitLock = new Promise((r) => (release = r));
    await prev;
    const client = this.#current();
    try {
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
      return { client, ack: ack! };
    } catch (err) {
      throw Object.assign(err instanceof Error ? err : new Error(String(err)), { client });
    } finally {
      release();
    }
  }

  async #drained(client: FluentClient, signal: AbortSignal): Promise<void> {
    const started = Date.now();
    for (let i = 0; client.sendQueueLength > 0; i++) {
      signal.throwIfAborted();
      if (client !== this.#client) throw new CollectorError('SINK_ERROR', 'forward client was replaced');
      if (this.#fatal.has(client)) throw new CollectorError('SINK_ERROR', 'the forward connection failed for good (FATAL); reconnecting with a new client');
      // Not writable for as long as an ack may take (receiver down, stalled, or refusing): give
      // the send back to the retry path, which replaces the client and logs it.
      if (Date.now() - started > this.cfg.ackTimeoutMs) {
        throw new CollectorError('SINK_ERROR', `cannot write to ${this.description} for ${this.cfg.ackTimeoutMs} ms (receiver down or not reading)`);
      }
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
      const release = await this.#slots.acquire(signal);
      // The client the frame actually went out on (the current one may change while we wait).
      let used: FluentClient | undefined;
      try {
        const { client, ack } = await this.#emitFrame(frame, signal);
        used = client;
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
        this.#replaceClient(used ?? (err as { client?: FluentClient }).client ?? this.#current());
      } finally {
        release();
      }
      await sleep(backoffDelay(attempt, { baseMs: 500, maxMs: 30_000 }), signal);
    }
  }

  /**
   * Drops a client that failed (it may be FATAL or hold a half-dead socket) and starts a new one.
   * The old one is shut down in the background: its socket.end() never completes while a live
   * peer has stopped reading, so nothing waits for it.
   */
  #replaceClient(failed: FluentClient): void {
    if (failed !== this.#client || this.#closed) return;
    this.#client = this.#createClient();
    void shutdownClient(failed);
  }

  async send(records: RoutedRecord[], signal: AbortSignal): Promise<void> {
    if (records.length === 0) return;
    const frames = buildFrames(records, this.cfg.maxFrameBytes);
    if (frames.length > 8) setMaxListeners(0, signal); // every frame of a big blob waits on it
    await Promise.all(frames.map((f) => this.#sendFrame(f, signal)));
  }

  async probe(record: RoutedRecord, timeoutMs: number): Promise<void> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new CollectorError('SINK_ACK_TIMEOUT', `no ack from ${this.description} within ${timeoutMs} ms`)), timeoutMs);
    try {
      const [frame] = buildFrames([record], this.cfg.maxFrameBytes);
      const release = await this.#slots.acquire(ac.signal);
      try {
        const { ack } = await this.#emitFrame(frame!, ac.signal);
        await Promise.race([ack, new Promise((_, reject) => ac.signal.addEventListener('abort', () => reject(ac.signal.reason)))]);
      } finally {
        release();
      }
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#slots.cancel(new CollectorError('SINK_ERROR', 'forward output is closed'));
    if (this.#client) await shutdownClient(this.#client);
  }
}

/**
 * Shuts a client down, waiting at most 2 s for its socket to end gracefully; then destroys the
 * socket (the library's shutdown waits on socket.end(), which a peer that stopped reading never
 * lets finish) so no timer or socket keeps the process alive.
 */
async function shutdownClient(client: FluentClient): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 2000)));
  await Promise.race([client.shutdown().catch(() => {}), timedOut]);
  clearTimeout(timer);
  // Destroy the socket in any case: a shutdown that lands while the socket is still connecting
  // leaves it to connect afterwards and stay open, keeping the process alive. Internal fields of
  // @fluent-org/logger 1.0.10 (client.socket: FluentSocket, its .socket: net.Socket).
  const destroy = () => (client as unknown as { socket?: { socket?: { destroy?: () => void } | null } }).socket?.socket?.destroy?.();
  destroy();
  setImmediate(destroy); // and once more, for a connect the library had already scheduled
}
