import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import * as protocol from '@fluent-org/logger/build/src/protocol.js';
import type { ForwardOutputConfig } from '../config/schema.ts';
import { CollectorError } from '../errors.ts';
import { BACKOFF, backoffDelay } from '../polling/backoff.ts';
import type { Logger } from '../support/logger.ts';
import { frameOverhead } from '../record/encode.ts';
import { chunkIds, encodeFrame, planFrames, type FrameBytes, type FramePlan } from './frames.ts';
import type { EncodedEntry, Sink, SinkHealth } from './types.ts';

/**
 * Forward output to Fluent Bit's in_forward (or Vector's fluent source), with acks.
 *
 * It drives its own socket and writes whole PackedForward frames (frames.ts), matching each ack to
 * its frame by chunk id. `@fluent-org/logger` is kept for what it does well here, its protocol
 * decoder for the server's answers, but not its client: that client merges everything queued for a
 * tag into one packet with one promise (so frame size and ack bookkeeping escape us), re-sends
 * every frame in flight when one ack is late, and goes FATAL for good on an unexpected answer
 * (reference forward-fluent-bit-devo.md §4.4).
 *
 * Frames: each send() is cut into pieces of one tag (frames.ts); a frame is built when it goes out,
 * from the first queued piece and later pieces of the same tag from any send, up to
 * max_frame_bytes, so an ack covers as many records as a frame may carry even when blobs are small
 * and acks slow. A send() resolves when all its pieces are acked. What waits for acks is bounded in
 * bytes: send() waits for room before queueing (the output's share of DESIGN guarantee 5).
 *
 * Acks and slow receivers (DESIGN guarantee 6b: slow acks shrink what is in flight instead of
 * multiplying re-sends):
 * - at most `window` frames are in flight; it starts at max_frames_in_flight, halves on an ack
 *   timeout (at most once per timeout period: one late burst is one signal), and grows by one after
 *   a window's worth of acks that came in time;
 * - a frame whose ack does not come within the effective ack timeout is re-sent alone, on the same
 *   connection, with the same chunk id; the others keep waiting. Whichever copy's ack arrives first
 *   completes it; the other ack is ignored;
 * - an ack that arrives after its frame timed out proves the receiver is slow, not dead: the
 *   effective ack timeout grows (to 1.5 × what that ack took, at least doubled, capped at 10 ×
 *   ack_timeout or 10 min), and decays back towards ack_timeout after a long run of fast acks;
 * - a frame that times out twice with no ack at all on its connection in between means the
 *   connection is dead: it is closed, and every frame in flight goes again on a new one (acks only
 *   come back on the connection that carried the frame).
 * Answers other than acks end the connection: `{}` (Vector: its sink rejected the events; the
 * frames are re-sent), a HELO (the input wants shared_key, which JS clients cannot do with Fluent
 * Bit, §0.1: a clear error, retried with backoff), anything else (a protocol error).
 *
 * Nothing outlives an abort: a send's frames leave the queue and the in-flight set as soon as its
 * signal aborts, and close() destroys the socket and every timer.
 */
/** One send()'s records of one tag, at most a frame's worth: the unit frames are built from. */
interface Piece {
  plan: FramePlan;
  records: number;
  /** Bytes it counts against the output's pending-bytes bound (0 once it left). */
  size: number;
  /** Tells its send() this piece is acked (or failed); a no-op once that send gave up. */
  done: (err?: unknown) => void;
}

/** A frame on the wire: pieces of the same tag, possibly from several sends, under one chunk id. */
interface Frame {
  chunk: string;
  tag: string;
  pieces: Piece[];
  bytes: FrameBytes;
  records: number;
  /** First written (ms, performance clock), for latency. */
  firstSentAt?: number;
  /** The connection it was last written on. */
  conn?: Connection;
  resent: boolean;
  acksOnConnAtSend: number;
  timer?: NodeJS.Timeout;
}

interface Connection {
  socket: net.Socket;
  open: boolean;
  draining: boolean;
  acks: number;
  /** Why we ended it (an answer that is not an ack), so the close does not guess another reason. */
  failure?: string;
}

const now = () => performance.now();

/** A TCP connect plus TLS handshake on a working network takes milliseconds; this long means it never will. */
const CONNECT_TIMEOUT_MS = 10_000;

/** While the output fails, its warning is repeated at most this often. */
const PROBLEM_LOG_EVERY_MS = 60_000;

export class ForwardSink implements Sink {
  readonly description: string;
  readonly wire = 'forward' as const;
  /** Pieces waiting for a frame, in order. */
  readonly #queue: Piece[] = [];
  /** Frames that lost their connection, to go again (before new pieces). */
  readonly #resend: Frame[] = [];
  readonly #inFlight = new Map<string, Frame>();
  readonly #nextChunk = chunkIds();
  #conn?: Connection;
  #connecting = false;
  #reconnectTimer?: NodeJS.Timeout;
  #reconnectAttempt = 0;
  #window: number;
  #ackTimeoutMs: number;
  readonly #maxAckTimeoutMs: number;
  #onTime = 0;
  /** When the window last shrank: it shrinks at most once per ack timeout (one burst of late acks is one signal). */
  #shrunkAt = -Infinity;
  /** Bytes of frames queued or in flight; send() waits while this is over #maxPendingBytes. */
  #pendingBytes = 0;
  readonly #maxPendingBytes: number;
  readonly #roomWaiters: Array<() => void> = [];
  #closed = false;
  /** Since when entries have been waiting without any progress (an ack), or undefined when none wait. */
  #stalledSince?: number;
  #lastError?: string;
  /** When the last "not delivering" warning was logged (undefined: none since the last ack). */
  #problemLoggedAt?: number;
  /** Counters for status records and tests. */
  readonly stats = { framesSent: 0, framesAcked: 0, framesResent: 0, recordsAcked: 0, lateAcks: 0, reconnects: 0 };
  /** Told, per acked frame, the ms from its first write to its ack (metrics, src/metrics/); unset, nothing is done. */
  ackObserver?: (ms: number) => void;

  constructor(
    private readonly cfg: ForwardOutputConfig,
    private readonly log: Logger,
  ) {
    this.description = cfg.unixSocket ? `forward unix:${cfg.unixSocket}` : `forward ${cfg.tls ? 'tls://' : 'tcp://'}${cfg.host}:${cfg.port}`;
    this.#window = cfg.maxFramesInFlight;
    this.#ackTimeoutMs = cfg.ackTimeoutMs;
    this.#maxAckTimeoutMs = Math.max(cfg.ackTimeoutMs, Math.min(cfg.ackTimeoutMs * 10, 600_000));
    // What may wait for acks at once, whoever sent it: the memory bound of the output (DESIGN 5).
    this.#maxPendingBytes = Math.max(cfg.maxRecordBytes, 2 * cfg.maxFramesInFlight * cfg.maxFrameBytes);
  }

  /** The current effective ack timeout and in-flight window (status, tests). */
  get flow(): { ackTimeoutMs: number; window: number } {
    return { ackTimeoutMs: this.#ackTimeoutMs, window: this.#window };
  }

  async send(entries: EncodedEntry[], signal: AbortSignal, onQueued?: () => void): Promise<void> {
    if (entries.length === 0) return onQueued?.();
    if (this.#closed) throw new CollectorError('SINK_ERROR', 'forward output is closed');
    signal.throwIfAborted();
    const plans = planFrames(entries, this.cfg.maxFrameBytes);
    await this.#room(plans.reduce((n, p) => n + p.entryBytes, 0), signal);
    const acked = new Promise<void>((resolve, reject) => {
      let left = plans.length;
      let over = false;
      const pieces: Piece[] = [];
      const end = (err?: unknown) => {
        over = true;
        signal.removeEventListener('abort', onAbort);
        if (err === undefined) return resolve();
        // Pieces still queued leave; pieces already in a frame ride along (other sends share it)
        // but no longer count against the bound, and their ack is ignored.
        for (const p of pieces) this.#unqueue(p);
        reject(err);
      };
      const onAbort = () => end(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      for (const plan of plans) {
        const piece: Piece = {
          plan,
          records: plan.parts.length,
          size: plan.entryBytes,
          done: (err?: unknown) => {
            this.#unpend(piece);
            if (over) return;
            if (err !== undefined) end(err);
            else if (--left === 0) end();
          },
        };
        this.#pendingBytes += piece.size;
        pieces.push(piece);
        this.#queue.push(piece);
      }
      this.#stalledSince ??= now();
      this.#pump();
    });
    onQueued?.();
    return acked;
  }

  /**
   * Waits until `bytes` more may wait for acks (the output's memory bound); always lets a send
   * through when nothing waits, so one record larger than the bound still goes.
   */
  async #room(bytes: number, signal: AbortSignal): Promise<void> {
    while (this.#pendingBytes > 0 && this.#pendingBytes + bytes > this.#maxPendingBytes) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const i = this.#roomWaiters.indexOf(wake);
          if (i >= 0) this.#roomWaiters.splice(i, 1);
          reject(signal.reason);
        };
        const wake = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        this.#roomWaiters.push(wake);
        signal.addEventListener('abort', onAbort, { once: true });
      });
      if (this.#closed) throw new CollectorError('SINK_ERROR', 'forward output is closed');
    }
  }

  /** A piece leaves the output (acked, aborted or closed): its bytes no longer count, waiting senders may go. */
  #unpend(p: Piece): void {
    if (p.size === 0) return;
    this.#pendingBytes -= p.size;
    p.size = 0;
    for (const wake of this.#roomWaiters.splice(0)) wake();
  }

  #waiting(): boolean {
    return this.#queue.length > 0 || this.#resend.length > 0 || this.#inFlight.size > 0;
  }

  health(): SinkHealth {
    const waiting = this.#waiting();
    return {
      waiting,
      stalledMs: waiting && this.#stalledSince !== undefined ? now() - this.#stalledSince : 0,
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    const err = new CollectorError('SINK_ERROR', 'forward output is closed');
    const frames = [...this.#resend, ...this.#inFlight.values()];
    for (const f of frames) clearTimeout(f.timer);
    for (const p of [...this.#queue, ...frames.flatMap((f) => f.pieces)]) p.done(err);
    this.#queue.length = 0;
    this.#resend.length = 0;
    this.#inFlight.clear();
    for (const wake of this.#roomWaiters.splice(0)) wake();
    const c = this.#conn;
    this.#conn = undefined;
    if (c) await endSocket(c.socket);
  }

  /** A piece whose send gave up leaves the queue (in a frame already, it rides along). */
  #unqueue(p: Piece): void {
    this.#unpend(p);
    const i = this.#queue.indexOf(p);
    if (i >= 0) this.#queue.splice(i, 1);
    if (!this.#waiting()) this.#stalledSince = undefined;
  }

  /** Writes queued frames while the window and the socket allow. */
  #pump(): void {
    if (this.#closed || (this.#queue.length === 0 && this.#resend.length === 0)) return;
    const c = this.#conn;
    if (!c) return this.#connect();
    if (!c.open) return;
    // Frames written in one go leave in one system call (they are small next to its cost here).
    c.socket.cork();
    while (!c.draining && (this.#resend.length > 0 || this.#queue.length > 0) && this.#inFlight.size < this.#window) {
      const f = this.#resend.shift() ?? this.#nextFrame();
      this.#inFlight.set(f.chunk, f);
      f.resent = false;
      this.#write(c, f);
    }
    c.socket.uncork();
  }

  /**
   * The next frame: the first queued piece, joined by later pieces of the same tag (from any send)
   * while the frame stays within max_frame_bytes. With slow acks this is what keeps throughput up:
   * each ack covers as many records as a frame may carry, not one blob's worth.
   */
  #nextFrame(): Frame {
    const first = this.#queue.shift()!;
    const pieces = [first];
    const budget = this.cfg.maxFrameBytes - frameOverhead(first.plan.tag);
    let bytes = first.plan.entryBytes;
    for (let i = 0, seen = 0; i < this.#queue.length && seen < 256 && bytes < budget; seen++) {
      const p = this.#queue[i]!;
      if (p.plan.tag === first.plan.tag && bytes + p.plan.entryBytes <= budget) {
        pieces.push(p);
        bytes += p.plan.entryBytes;
        this.#queue.splice(i, 1);
      } else i++;
    }
    const chunk = this.#nextChunk();
    const plan: FramePlan = { tag: first.plan.tag, parts: pieces.flatMap((p) => p.plan.parts), entryBytes: bytes };
    const frame: Frame = { chunk, tag: plan.tag, pieces, bytes: encodeFrame(plan, chunk), records: plan.parts.length, resent: false, acksOnConnAtSend: 0 };
    return frame;
  }

  #write(c: Connection, f: Frame): void {
    f.conn = c;
    f.firstSentAt ??= now();
    f.acksOnConnAtSend = c.acks;
    this.stats.framesSent++;
    // Corked by #pump (or here, for a re-send): the pieces leave in one writev.
    c.socket.cork();
    let ok = true;
    for (const chunk of f.bytes.chunks) ok = c.socket.write(chunk) && ok;
    c.socket.uncork();
    if (!ok) c.draining = true;
    clearTimeout(f.timer);
    f.timer = setTimeout(() => this.#onAckTimeout(f), this.#ackTimeoutMs);
  }

  #onAckTimeout(f: Frame): void {
    const c = f.conn;
    if (this.#closed || !c || c !== this.#conn || this.#inFlight.get(f.chunk) !== f) return;
    if (c.draining) {
      // Not even written out yet (the receiver is not reading): waiting longer, not re-sending, helps.
      f.timer = setTimeout(() => this.#onAckTimeout(f), this.#ackTimeoutMs);
      return;
    }
    if (now() - this.#shrunkAt >= this.#ackTimeoutMs) {
      this.#window = Math.max(1, Math.floor(this.#window / 2));
      this.#shrunkAt = now();
    }
    this.#onTime = 0;
    if (f.resent && c.acks === f.acksOnConnAtSend) {
      this.#lastError = c.failure = `no ack for ${Math.round((now() - f.firstSentAt!) / 1000)} s on this connection (the receiver takes data but does not acknowledge it)`;
      c.socket.destroy();
      return;
    }
    this.stats.framesResent++;
    this.log.warn('forward frame not acked in time; re-sending it alone', {
      output: this.description,
      tag: f.tag,
      records: f.records,
      ackTimeoutMs: this.#ackTimeoutMs,
      window: this.#window,
    });
    f.resent = true;
    this.#write(c, f);
  }

  #onAck(c: Connection, chunk: string): void {
    const f = this.#inFlight.get(chunk);
    if (!f) return; // the second copy of a re-sent frame, one whose send was aborted, or garbage
    c.acks++;
    // The receiver takes our data: the reconnect backoff starts over (a connect alone proves
    // nothing: a shared_key input or a too-small buffer accepts the connection, then drops it).
    this.#reconnectAttempt = 0;
    this.#problemLoggedAt = undefined;
    clearTimeout(f.timer);
    this.#inFlight.delete(chunk);
    const took = now() - f.firstSentAt!;
    this.ackObserver?.(took);
    this.#lastError = undefined;
    this.#stalledSince = this.#waiting() ? now() : undefined;
    if (took > this.#ackTimeoutMs) {
      // Late, not lost: give the receiver more time instead of re-sending more.
      this.stats.lateAcks++;
      const next = Math.min(this.#maxAckTimeoutMs, Math.max(this.#ackTimeoutMs * 2, Math.ceil(took * 1.5)));
      if (next !== this.#ackTimeoutMs) {
        this.log.warn('forward acks come late; waiting longer for them and sending fewer frames at once', { output: this.description, ackMs: Math.round(took), ackTimeoutMs: next, window: this.#window });
      }
      this.#ackTimeoutMs = next;
      this.#onTime = 0;
    } else if (++this.#onTime >= this.#window) {
      this.#onTime = 0;
      this.#window = Math.min(this.cfg.maxFramesInFlight, this.#window + 1);
      if (took < this.cfg.ackTimeoutMs / 2 && this.#ackTimeoutMs > this.cfg.ackTimeoutMs) {
        this.#ackTimeoutMs = Math.max(this.cfg.ackTimeoutMs, Math.floor(this.#ackTimeoutMs * 0.75));
      }
    }
    this.stats.framesAcked++;
    this.stats.recordsAcked += f.records;
    for (const p of f.pieces) p.done();
    this.#pump();
  }

  #connect(): void {
    if (this.#connecting || this.#reconnectTimer || this.#closed) return;
    this.#connecting = true;
    let socket: net.Socket;
    try {
      socket = this.#openSocket();
    } catch (err) {
      this.#connecting = false;
      this.#lastError = (err as Error).message;
      this.#reportProblem(0);
      this.#scheduleReconnect();
      return;
    }
    const c: Connection = { socket, open: false, draining: false, acks: 0 };
    this.#conn = c;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    // A connect (or TLS handshake) that never completes must not hold the output for ever.
    const connectTimer = setTimeout(() => {
      this.#lastError = c.failure = `no connection to ${this.description.replace(/^forward /, '')} within ${CONNECT_TIMEOUT_MS / 1000} s${socket instanceof tls.TLSSocket ? ' (TCP or TLS handshake not completed: is the input TLS-enabled, with a certificate this collector trusts?)' : ''}`;
      socket.destroy();
    }, CONNECT_TIMEOUT_MS);
    const onOpen = () => {
      clearTimeout(connectTimer);
      this.#connecting = false;
      c.open = true;
      this.log.debug('forward connected', { output: this.description });
      this.#pump();
    };
    socket.once('close', () => clearTimeout(connectTimer));
    if (socket instanceof tls.TLSSocket) socket.once('secureConnect', onOpen);
    else socket.once('connect', onOpen);
    socket.on('drain', () => {
      c.draining = false;
      this.#pump();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.#lastError = describeSocketError(err, this.description);
    });
    socket.on('close', () => this.#onClose(c));
    void this.#readAnswers(c);
  }

  #openSocket(): net.Socket {
    const c = this.cfg;
    if (c.unixSocket) return net.connect({ path: c.unixSocket });
    if (!c.tls) return net.connect({ host: c.host, port: c.port });
    const file = (key: string, f?: string) => {
      if (!f) return undefined;
      try {
        return readFileSync(f);
      } catch (err) {
        throw new Error(`cannot read output.forward.tls.${key} ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    };
    return tls.connect({
      host: c.host,
      port: c.port,
      ca: file('ca_file', c.tls.caFile),
      cert: file('cert_file', c.tls.certFile),
      key: file('key_file', c.tls.keyFile),
      servername: c.tls.serverName ?? (net.isIP(c.host) ? undefined : c.host),
      rejectUnauthorized: c.tls.verify,
    });
  }

  /** Reads the receiver's answers: acks, or anything else, which ends the connection. */
  async #readAnswers(c: Connection): Promise<void> {
    try {
      for await (const msg of protocol.decodeServerStream(c.socket)) {
        if (protocol.isAck(msg)) {
          this.#onAck(c, msg.ack);
          continue;
        }
        this.#lastError = c.failure = unexpectedAnswer(msg);
        c.socket.destroy();
        return;
      }
    } catch (err) {
      if (!c.socket.destroyed) {
        this.#lastError = c.failure = `the receiver sent data that is not a Forward answer (${(err as Error).message.slice(0, 100)})`;
        c.socket.destroy();
      }
    }
  }

  #onClose(c: Connection): void {
    if (this.#conn !== c) return;
    this.#conn = undefined;
    this.#connecting = false;
    if (this.#closed) return;
    // Acks only come back on the connection that carried the frame: everything in flight goes again.
    const again = [...this.#inFlight.values()].filter((f) => f.conn === c);
    for (const f of again) {
      clearTimeout(f.timer);
      this.#inFlight.delete(f.chunk);
    }
    this.#resend.unshift(...again);
    if (again.length > 0 && c.acks === 0 && c.open && !c.failure) {
      // Fluent Bit closes the connection, without an ack, on a frame above its buffer_max_size (§2.5).
      const largest = Math.max(...again.map((f) => f.bytes.length));
      this.#lastError = `the receiver closed the connection with ${again.length} frame(s) unacknowledged (largest ${largest} bytes): if Fluent Bit logs "incoming data exceed limit", raise the forward input's Buffer_Max_Size above output.forward.max_frame_bytes and max_record_bytes`;
    }
    this.#lastError ??= 'the connection closed';
    this.#reportProblem(again.length);
    if (this.#waiting()) this.#scheduleReconnect();
  }

  /**
   * Says why the output is not delivering: at once the first time, then at most every
   * PROBLEM_LOG_EVERY_MS while it lasts, so a service whose Fluent Bit is down (or refuses it)
   * is never silent, and never floods the log either. The next ack starts over.
   */
  #reportProblem(framesToResend: number): void {
    const t = now();
    if (this.#problemLoggedAt !== undefined && t - this.#problemLoggedAt < PROBLEM_LOG_EVERY_MS) return;
    this.#problemLoggedAt = t;
    this.log.warn('forward output not delivering; retrying', {
      output: this.description,
      error: this.#lastError,
      framesToResend,
      ...(this.#stalledSince !== undefined ? { stalledSeconds: Math.round((t - this.#stalledSince) / 1000) } : {}),
    });
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer) return;
    const delay = backoffDelay(this.#reconnectAttempt++, BACKOFF.forwardReconnect);
    this.stats.reconnects++;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#pump();
    }, delay);
  }
}

/** One line for a socket error towards the receiver. */
function describeSocketError(err: NodeJS.ErrnoException, where: string): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return `connection refused (ECONNREFUSED): is a forward input listening at ${where.replace(/^forward /, '')}?`;
    case 'ENOENT':
      return `no unix socket there (ENOENT): is the forward input's unix_path the same file?`;
    case 'ECONNRESET':
    case 'EPIPE':
      return `the receiver closed the connection (${err.code})`;
    default:
      return `${err.code ? err.code + ': ' : ''}${err.message.split('\n')[0]}`;
  }
}

function unexpectedAnswer(msg: unknown): string {
  if (protocol.isHelo(msg)) {
    return 'the forward input asks for shared_key authentication (HELO); m365-forward does not support shared_key (the Forward handshake of JS clients does not interoperate with Fluent Bit): remove shared_key from the input and use TLS or a unix socket';
  }
  if (typeof msg === 'object' && msg !== null && !Array.isArray(msg) && Object.keys(msg).length === 0) {
    return 'the receiver rejected the frame (it answered {} instead of an ack, as Vector does when its sink rejects events); re-sending';
  }
  return `the receiver answered something that is not an ack (${Array.isArray(msg) ? 'an array' : typeof msg})`;
}

/** Ends a socket gracefully if the peer reads, else destroys it within 1 s: close() never hangs. */
function endSocket(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    const t = setTimeout(() => socket.destroy(), 1000);
    socket.once('close', () => {
      clearTimeout(t);
      resolve();
    });
    socket.end();
  });
}
