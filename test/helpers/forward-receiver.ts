import net from 'node:net';
import tls from 'node:tls';
import { gunzipSync } from 'node:zlib';
import { EventTime } from '@fluent-org/logger';
import * as protocol from '@fluent-org/logger/build/src/protocol.js';

/**
 * A Forward receiver for tests, on a real loopback socket: decodes every mode the way Fluent Bit's
 * in_forward does, acks `chunk` frames (or withholds acks on demand), and records what it got,
 * including each frame's encoded size. Like Fluent Bit it closes the connection, without an ack,
 * on a frame above `bufferMaxSize`.
 *
 * With `exactIntegers` it decodes frames itself (below) instead of through @fluent-org/logger's
 * @msgpack/msgpack 2.8.0, which turns int64/uint64 beyond 2^53 into lossy doubles and has no
 * `useBigInt64` option (that arrived in @msgpack/msgpack 3.0). Then every msgpack uint64/int64
 * (0xcf/0xd3) decodes to a bigint, as `useBigInt64: true` does in 3.x, and every entry also keeps
 * its record's msgpack bytes as received (`rawRecord`), for byte-for-byte comparisons.
 */
export interface ReceivedEntry {
  tag: string;
  timeMs: number;
  nanos: number;
  /**
   * The decoded record. With `exactIntegers`: uint64/int64 encodings are bigints, binaries are
   * Uint8Arrays, extension values other than EventTime are {@link ExtValue}s, and strings are
   * decoded as UTF-8 with U+FFFD for invalid bytes (compare `rawRecord` to see the bytes).
   */
  record: Record<string, unknown>;
  /** With `exactIntegers`: the record's msgpack bytes exactly as they arrived. */
  rawRecord?: Uint8Array;
}

export interface ForwardReceiver {
  port: number;
  entries: ReceivedEntry[];
  frameSizes: number[];
  chunks: string[];
  /** Frames that arrived (acked or not). */
  frames: number;
  /** 'reject': answer `{}` and close, as Vector does when a sink rejects the events. */
  setAck(mode: 'always' | 'never' | 'reject'): void;
  /** Greet new connections with a HELO, as a Fluent Bit input with shared_key does. */
  setHelo(on: boolean): void;
  close(): Promise<void>;
}

/** Options of {@link startForwardReceiver}. */
export interface ForwardReceiverOptions {
  ack?: 'always' | 'never' | 'reject';
  bufferMaxSize?: number;
  /** Listen on this unix socket instead of a loopback TCP port. */
  path?: string;
  tls?: tls.TlsOptions;
  /** Decode int64/uint64 exactly (bigint) and keep each entry's `rawRecord`; see the header. */
  exactIntegers?: boolean;
}

/** Starts a receiver on a free loopback port (or `opts.path`); close() it when done. */
export async function startForwardReceiver(opts: ForwardReceiverOptions = {}): Promise<ForwardReceiver> {
  let ackMode = opts.ack ?? 'always';
  let helo = false;
  const sockets = new Set<net.Socket>();
  const r: Omit<ForwardReceiver, 'port' | 'close' | 'setAck' | 'setHelo'> = { entries: [], frameSizes: [], chunks: [], frames: 0 };
  /** The part shared by both decoders: count the frame, keep its entries, answer its chunk. Returns false once the socket is done. */
  const onFrame = (socket: net.Socket, size: number, tag: string, entries: ReceivedEntry[], chunk: string | undefined): boolean => {
    if (opts.bufferMaxSize && size > opts.bufferMaxSize) {
      socket.destroy();
      return false;
    }
    r.frames++;
    r.frameSizes.push(size);
    for (const e of entries) r.entries.push({ ...e, tag });
    if (chunk) {
      r.chunks.push(chunk);
      if (ackMode === 'reject') {
        socket.end(protocol.encodeMessage({} as never));
        return false;
      }
      if (ackMode === 'always') socket.write(protocol.encodeMessage(protocol.generateAck(chunk)));
    }
    return true;
  };
  const onConnection = async (socket: net.Socket) => {
    sockets.add(socket);
    if (helo) socket.write(protocol.encodeMessage(protocol.generateHelo('nonce123456789ab', 'authsalt', true) as never));
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (opts.exactIntegers) {
      readExactFrames(socket, (frame, size) => {
        const t = parseTransportExact(frame);
        return onFrame(socket, size, t.tag, t.entries, t.chunk);
      });
      return;
    }
    try {
      for await (const message of protocol.decodeClientStream(socket)) {
        const size = Buffer.from(protocol.encodeMessage(message as never)).length;
        const t = protocol.parseTransport(message as never);
        const entries = (t.entries as Array<[unknown, Record<string, unknown>]>).map(([time, record]) => {
          const et = time instanceof EventTime ? time : undefined;
          return {
            tag: t.tag,
            timeMs: et ? et.epoch * 1000 + Math.floor(et.nano / 1e6) : Number(time) * 1000,
            nanos: et ? et.nano : 0,
            record,
          };
        });
        if (!onFrame(socket, size, t.tag, entries, t.chunk)) return;
      }
    } catch {
      socket.destroy();
    }
  };
  const server = opts.tls ? tls.createServer(opts.tls, onConnection) : net.createServer(onConnection);
  await new Promise<void>((resolve) => (opts.path ? server.listen(opts.path, resolve) : server.listen(0, '127.0.0.1', resolve)));
  const addr = server.address();
  return Object.assign(r, {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    setAck(mode: 'always' | 'never' | 'reject') {
      ackMode = mode;
    },
    setHelo(on: boolean) {
      helo = on;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

// ---------------------------------------------------------------------------------------------
// The exact decoder: msgpack with 64-bit integers as bigints and byte spans kept.

/** A msgpack extension value other than EventTime (type 0), as received. */
export class ExtValue {
  constructor(
    readonly type: number,
    readonly data: Uint8Array,
  ) {}
}

/** Thrown when a value runs past the end of the bytes so far; `need` is a lower bound on the total length required. */
class NeedMore extends Error {
  constructor(readonly need: number) {
    super('incomplete msgpack value');
  }
}

const utf8 = new TextDecoder('utf-8');
// Copies below are plain Uint8Arrays (not Buffer views of the socket's data), as documented.

/** A cursor over msgpack bytes: decodes one value at a time and can skip one without decoding it. */
class MsgpackReader {
  pos: number;
  private readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    start = 0,
  ) {
    this.pos = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.length) throw new NeedMore(this.pos + n);
  }

  private u8(): number {
    this.need(1);
    return this.bytes[this.pos++];
  }

  private i8(): number {
    this.need(1);
    return this.view.getInt8(this.pos++);
  }

  private uint(n: 1 | 2 | 4): number {
    this.need(n);
    const v = n === 1 ? this.view.getUint8(this.pos) : n === 2 ? this.view.getUint16(this.pos) : this.view.getUint32(this.pos);
    this.pos += n;
    return v;
  }

  private take(n: number): Uint8Array {
    this.need(n);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /**
   * The next value's head: its kind and, for containers, the element count, for str/bin/ext the
   * byte length (and ext type), for scalars the value itself. Consumes the head only.
   */
  head(): { kind: 'map' | 'array' | 'str' | 'bin' | 'ext' | 'scalar'; n: number; extType?: number; value?: unknown } {
    const b = this.u8();
    if (b <= 0x7f) return { kind: 'scalar', n: 0, value: b };
    if (b <= 0x8f) return { kind: 'map', n: b & 0x0f };
    if (b <= 0x9f) return { kind: 'array', n: b & 0x0f };
    if (b <= 0xbf) return { kind: 'str', n: b & 0x1f };
    if (b >= 0xe0) return { kind: 'scalar', n: 0, value: b - 0x100 };
    switch (b) {
      case 0xc0: return { kind: 'scalar', n: 0, value: null };
      case 0xc2: return { kind: 'scalar', n: 0, value: false };
      case 0xc3: return { kind: 'scalar', n: 0, value: true };
      case 0xc4: return { kind: 'bin', n: this.uint(1) };
      case 0xc5: return { kind: 'bin', n: this.uint(2) };
      case 0xc6: return { kind: 'bin', n: this.uint(4) };
      case 0xc7: { const n = this.uint(1); return { kind: 'ext', n, extType: this.i8() }; }
      case 0xc8: { const n = this.uint(2); return { kind: 'ext', n, extType: this.i8() }; }
      case 0xc9: { const n = this.uint(4); return { kind: 'ext', n, extType: this.i8() }; }
      case 0xca: { this.need(4); const v = this.view.getFloat32(this.pos); this.pos += 4; return { kind: 'scalar', n: 0, value: v }; }
      case 0xcb: { this.need(8); const v = this.view.getFloat64(this.pos); this.pos += 8; return { kind: 'scalar', n: 0, value: v }; }
      case 0xcc: return { kind: 'scalar', n: 0, value: this.uint(1) };
      case 0xcd: return { kind: 'scalar', n: 0, value: this.uint(2) };
      case 0xce: return { kind: 'scalar', n: 0, value: this.uint(4) };
      case 0xcf: { this.need(8); const v = this.view.getBigUint64(this.pos); this.pos += 8; return { kind: 'scalar', n: 0, value: v }; }
      case 0xd0: return { kind: 'scalar', n: 0, value: this.i8() };
      case 0xd1: { this.need(2); const v = this.view.getInt16(this.pos); this.pos += 2; return { kind: 'scalar', n: 0, value: v }; }
      case 0xd2: { this.need(4); const v = this.view.getInt32(this.pos); this.pos += 4; return { kind: 'scalar', n: 0, value: v }; }
      case 0xd3: { this.need(8); const v = this.view.getBigInt64(this.pos); this.pos += 8; return { kind: 'scalar', n: 0, value: v }; }
      case 0xd4: return { kind: 'ext', n: 1, extType: this.i8() };
      case 0xd5: return { kind: 'ext', n: 2, extType: this.i8() };
      case 0xd6: return { kind: 'ext', n: 4, extType: this.i8() };
      case 0xd7: return { kind: 'ext', n: 8, extType: this.i8() };
      case 0xd8: return { kind: 'ext', n: 16, extType: this.i8() };
      case 0xd9: return { kind: 'str', n: this.uint(1) };
      case 0xda: return { kind: 'str', n: this.uint(2) };
      case 0xdb: return { kind: 'str', n: this.uint(4) };
      case 0xdc: return { kind: 'array', n: this.uint(2) };
      case 0xdd: return { kind: 'array', n: this.uint(4) };
      case 0xde: return { kind: 'map', n: this.uint(2) };
      case 0xdf: return { kind: 'map', n: this.uint(4) };
      default: throw new Error(`invalid msgpack byte 0x${b.toString(16)} at ${this.pos - 1}`);
    }
  }

  /** Skips one value without building it (iteratively: nesting depth is the sender's choice). */
  skip(): void {
    let pending = 1;
    while (pending > 0) {
      pending--;
      const h = this.head();
      if (h.kind === 'map') pending += 2 * h.n;
      else if (h.kind === 'array') pending += h.n;
      else if (h.kind !== 'scalar') this.take(h.n);
    }
  }

  /** The raw bytes of a str or bin value (a PackedForward payload, a chunk id). */
  bytesOf(): { kind: 'str' | 'bin'; data: Uint8Array } {
    const h = this.head();
    if (h.kind !== 'str' && h.kind !== 'bin') throw new Error(`expected str or bin, got ${h.kind}`);
    return { kind: h.kind, data: this.take(h.n) };
  }

  /** Decodes one value: bigint for uint64/int64, EventTime for ext 0 of 8 bytes, ExtValue for other exts. */
  value(): unknown {
    const h = this.head();
    switch (h.kind) {
      case 'scalar':
        return h.value;
      case 'str':
        return utf8.decode(this.take(h.n));
      case 'bin':
        return new Uint8Array(this.take(h.n));
      case 'ext': {
        const data = this.take(h.n);
        if (h.extType === 0 && h.n === 8) {
          const v = new DataView(data.buffer, data.byteOffset, 8);
          return new EventTime(v.getUint32(0), v.getUint32(4));
        }
        return new ExtValue(h.extType!, new Uint8Array(data));
      }
      case 'array': {
        const out: unknown[] = [];
        for (let i = 0; i < h.n; i++) out.push(this.value());
        return out;
      }
      case 'map': {
        const out: Record<string, unknown> = {};
        for (let i = 0; i < h.n; i++) {
          const key = String(this.value());
          const v = this.value();
          // A key named __proto__ must become an own property, not the object's prototype.
          if (key === '__proto__') Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
          else out[key] = v;
        }
        return out;
      }
    }
  }
}

/**
 * Splits a socket's bytes into whole msgpack frames and hands each to `onFrame` with its exact
 * size; stops when `onFrame` returns false, destroys the socket on bytes that are not msgpack.
 * Chunks are only joined once enough bytes for the frame's next known length have arrived, so a
 * frame of megabytes is not re-parsed at every 64 KB read.
 */
function readExactFrames(socket: net.Socket, onFrame: (frame: Uint8Array, size: number) => boolean): void {
  let parts: Buffer[] = [];
  let total = 0;
  let need = 1;
  let done = false;
  socket.on('data', (data: Buffer) => {
    if (done) return;
    parts.push(data);
    total += data.length;
    if (total < need) return;
    let buf = parts.length === 1 ? parts[0] : Buffer.concat(parts, total);
    try {
      for (;;) {
        const reader = new MsgpackReader(buf);
        try {
          reader.skip();
        } catch (e) {
          if (!(e instanceof NeedMore)) throw e;
          parts = [buf];
          total = buf.length;
          need = Math.max(e.need, buf.length + 1);
          return;
        }
        const frame = buf.subarray(0, reader.pos);
        buf = buf.subarray(reader.pos);
        if (!onFrame(frame, frame.length)) {
          done = true;
          return;
        }
        if (buf.length === 0) {
          parts = [];
          total = 0;
          need = 1;
          return;
        }
      }
    } catch {
      done = true;
      socket.destroy();
    }
  });
}

/** One Forward frame in any mode (Message, Forward, PackedForward, CompressedPackedForward), decoded exactly. */
function parseTransportExact(frame: Uint8Array): { tag: string; entries: ReceivedEntry[]; chunk?: string } {
  const reader = new MsgpackReader(frame);
  const top = reader.head();
  if (top.kind !== 'array' || top.n < 2) throw new Error('a Forward frame is an array of 2 or more');
  const tag = reader.value();
  if (typeof tag !== 'string') throw new Error('the tag must be a str');
  const secondAt = reader.pos;
  const second = reader.head();
  reader.pos = secondAt;
  const entries: ReceivedEntry[] = [];
  let options: Record<string, unknown> = {};
  const readOptions = (index: number) => {
    if (top.n > index) options = (reader.value() ?? {}) as Record<string, unknown>;
  };
  if (second.kind === 'array') {
    // Forward: [tag, [[time, record], ...], option?]
    const list = reader.head();
    for (let i = 0; i < list.n; i++) entries.push(readEntry(reader));
    readOptions(2);
  } else if (second.kind === 'str' || second.kind === 'bin') {
    // PackedForward / CompressedPackedForward: [tag, concatenated entries, option?]
    let payload = reader.bytesOf().data;
    readOptions(2);
    if (options.compressed === 'gzip') payload = gunzipSync(payload);
    else if (options.compressed !== undefined && options.compressed !== 'text') throw new Error(`unsupported compression ${String(options.compressed)}`);
    const inner = new MsgpackReader(payload);
    while (inner.pos < payload.length) entries.push(readEntry(inner));
  } else {
    // Message: [tag, time, record, option?]
    const time = reader.value();
    const start = reader.pos;
    const record = reader.value();
    entries.push(entryOf(time, record, new Uint8Array(frame.subarray(start, reader.pos))));
    readOptions(3);
  }
  const chunk = typeof options.chunk === 'string' ? options.chunk : undefined;
  return { tag, entries, chunk };
}

/** `[time, record]`, or Fluent Bit's internal `[[time, metadata], record]`. */
function readEntry(reader: MsgpackReader): ReceivedEntry {
  const h = reader.head();
  if (h.kind !== 'array' || h.n !== 2) throw new Error('an entry is [time, record]');
  let time = reader.value();
  if (Array.isArray(time)) time = time[0];
  const start = reader.pos;
  const record = reader.value();
  return entryOf(time, record, new Uint8Array(reader.bytes.subarray(start, reader.pos)));
}

function entryOf(time: unknown, record: unknown, rawRecord: Uint8Array): ReceivedEntry {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) throw new Error('a record is a map');
  const et = time instanceof EventTime ? time : undefined;
  return {
    tag: '',
    timeMs: et ? et.epoch * 1000 + Math.floor(et.nano / 1e6) : Number(time) * 1000,
    nanos: et ? et.nano : 0,
    record: record as Record<string, unknown>,
    rawRecord,
  };
}
