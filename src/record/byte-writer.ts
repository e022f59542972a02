/**
 * A growable byte buffer with msgpack writers (spec: github.com/msgpack/msgpack/blob/master/spec.md).
 *
 * Built for the record path: the JSON reader (json-records.ts) transcodes audit records straight
 * into one of these, and the sink frames the bytes without another encode. Every writer picks the
 * smallest msgpack encoding for its value, as @msgpack/msgpack and Fluent Bit's own encoder do, so
 * a frame's size is predictable from its content.
 *
 * Bytes are stored by hand (`b[i] = …`) rather than with Buffer's write* methods: those check
 * their arguments on every call, which costs more than the store itself on this hot path.
 */

/** Default initial capacity: one typical content blob page of records fits without growing. */
const DEFAULT_INITIAL_BYTES = 64 * 1024;

/** Below this many bytes a JS copy loop beats Buffer#copy's native call (measured in test/bench/codec.bench.ts). */
const SHORT_COPY = 32;

const TWO_32 = 2 ** 32;
const UINT64_MAX = (1n << 64n) - 1n;
const INT64_MIN = -(1n << 63n);

/** A growable output buffer with msgpack writers. `buf` may be replaced when it grows; `pos` is the write offset. */
export class ByteWriter {
  /** The bytes; replaced by a larger copy when it grows, so never keep a reference across writes. */
  buf: Buffer;
  /** Write offset: bytes [0, pos) are the output. */
  pos: number;

  /** @param initialBytes starting capacity (default 64 KiB). */
  constructor(initialBytes: number = DEFAULT_INITIAL_BYTES) {
    this.buf = Buffer.allocUnsafe(Math.max(16, initialBytes | 0));
    this.pos = 0;
  }

  /** Makes room for `n` more bytes after `pos`: the buffer at least doubles, so appends stay amortised O(1). */
  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  private grow(n: number): void {
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Forgets what was written (pos = 0); the buffer is kept for reuse. */
  reset(): void {
    this.pos = 0;
  }

  /** A copy of bytes [start, end) (default: everything written). */
  copy(start = 0, end = this.pos): Buffer {
    const out = Buffer.allocUnsafe(end - start);
    this.buf.copy(out, 0, start, end);
    return out;
  }

  /** One byte. */
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  /** Unsigned 16-bit, big-endian. */
  u16(v: number): void {
    this.ensure(2);
    const b = this.buf;
    const p = this.pos;
    b[p] = v >>> 8;
    b[p + 1] = v;
    this.pos = p + 2;
  }

  /** Unsigned 32-bit, big-endian. */
  u32(v: number): void {
    this.ensure(4);
    putU32(this.buf, this.pos, v);
    this.pos += 4;
  }

  /** Bytes [start, end) of `src` as they are (no header). */
  raw(src: Uint8Array, start = 0, end = src.length): void {
    const n = end - start;
    this.ensure(n);
    const b = this.buf;
    let p = this.pos;
    if (n < SHORT_COPY) {
      for (let i = start; i < end; i++) b[p++] = src[i]!;
    } else {
      b.set(src.subarray(start, end), p);
      p += n;
    }
    this.pos = p;
  }

  /** msgpack nil. */
  nil(): void {
    this.u8(0xc0);
  }

  /** msgpack true / false. */
  bool(v: boolean): void {
    this.u8(v ? 0xc3 : 0xc2);
  }

  /**
   * A safe integer in its smallest msgpack form: positive fixint, uint8/16/32/64, negative fixint,
   * int8/16/32/64. Throws RangeError for anything that is not a safe integer (use float64 or bigInt).
   */
  int(v: number): void {
    this.ensure(9);
    const b = this.buf;
    let p = this.pos;
    if (v >= 0) {
      if (v < 0x80) {
        b[p++] = v;
      } else if (v < 0x100) {
        b[p++] = 0xcc;
        b[p++] = v;
      } else if (v < 0x10000) {
        b[p++] = 0xcd;
        b[p++] = v >>> 8;
        b[p++] = v;
      } else if (v < TWO_32) {
        b[p++] = 0xce;
        putU32(b, p, v);
        p += 4;
      } else {
        if (!Number.isSafeInteger(v)) throw new RangeError(`ByteWriter.int: ${v} is not a safe integer`);
        b[p++] = 0xcf;
        putU32(b, p, Math.floor(v / TWO_32));
        putU32(b, p + 4, v >>> 0);
        p += 8;
      }
    } else if (v >= -0x20) {
      b[p++] = v & 0xff; // negative fixint 0xe0..0xff
    } else if (v >= -0x80) {
      b[p++] = 0xd0;
      b[p++] = v & 0xff;
    } else if (v >= -0x8000) {
      b[p++] = 0xd1;
      b[p++] = (v >> 8) & 0xff;
      b[p++] = v & 0xff;
    } else if (v >= -0x80000000) {
      b[p++] = 0xd2;
      putU32(b, p, v >>> 0);
      p += 4;
    } else {
      if (!Number.isSafeInteger(v)) throw new RangeError(`ByteWriter.int: ${v} is not a safe integer`);
      // Two's complement over 64 bits: high word = floor(v / 2^32) (negative), low word = the rest.
      const hi = Math.floor(v / TWO_32);
      b[p++] = 0xd3;
      putU32(b, p, hi >>> 0);
      putU32(b, p + 4, (v - hi * TWO_32) >>> 0);
      p += 8;
    }
    // `v !== v` and fractions fall through the comparisons above without writing a valid value;
    // catch them here so a bad call never leaves half an integer in the buffer.
    if (!Number.isInteger(v)) throw new RangeError(`ByteWriter.int: ${v} is not a safe integer`);
    this.pos = p;
  }

  /** An integer in the int64/uint64 range, smallest form (safe integers go through int). Throws RangeError outside. */
  bigInt(v: bigint): void {
    if (v >= -9007199254740991n && v <= 9007199254740991n) {
      this.int(Number(v));
      return;
    }
    if (v > UINT64_MAX || v < INT64_MIN) throw new RangeError(`ByteWriter.bigInt: ${v} is outside the int64/uint64 range`);
    this.ensure(9);
    if (v > 0n) {
      this.buf[this.pos] = 0xcf;
      this.buf.writeBigUInt64BE(v, this.pos + 1);
    } else {
      this.buf[this.pos] = 0xd3;
      this.buf.writeBigInt64BE(v, this.pos + 1);
    }
    this.pos += 9;
  }

  /** msgpack float 64 (0xcb), whatever the value: keeps -0, NaN and Infinity as they are. */
  float64(v: number): void {
    this.ensure(9);
    this.buf[this.pos] = 0xcb;
    this.buf.writeDoubleBE(v, this.pos + 1);
    this.pos += 9;
  }

  /**
   * A JS string as msgpack str, UTF-8 encoded. A lone UTF-16 surrogate becomes U+FFFD (EF BF BD),
   * which is what Buffer's UTF-8 encoder does and the same rule the JSON reader applies to a lone
   * `\uD800` escape.
   */
  str(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.strHeader(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
  }

  /** msgpack str header plus bytes [start, end) of `src`, which must already be UTF-8. */
  strBytes(src: Uint8Array, start: number, end: number): void {
    this.strHeader(end - start);
    this.raw(src, start, end);
  }

  /** Header of a msgpack bin of `n` bytes (bin8/16/32); the caller writes the bytes. */
  binHeader(n: number): void {
    if (n < 0x100) {
      this.ensure(2);
      this.buf[this.pos++] = 0xc4;
      this.buf[this.pos++] = n;
    } else if (n < 0x10000) {
      this.u8(0xc5);
      this.u16(n);
    } else {
      this.u8(0xc6);
      this.u32(n);
    }
  }

  /** Header of a map of `n` key/value pairs (fixmap/map16/map32). */
  mapHeader(n: number): void {
    if (n < 16) this.u8(0x80 | n);
    else if (n < 0x10000) {
      this.u8(0xde);
      this.u16(n);
    } else {
      this.u8(0xdf);
      this.u32(n);
    }
  }

  /** Header of an array of `n` elements (fixarray/array16/array32). */
  arrayHeader(n: number): void {
    if (n < 16) this.u8(0x90 | n);
    else if (n < 0x10000) {
      this.u8(0xdc);
      this.u16(n);
    } else {
      this.u8(0xdd);
      this.u32(n);
    }
  }

  /** Header of a str of `byteLength` UTF-8 bytes (fixstr/str8/str16/str32). */
  strHeader(byteLength: number): void {
    this.ensure(5);
    const b = this.buf;
    let p = this.pos;
    if (byteLength < 32) {
      b[p++] = 0xa0 | byteLength;
    } else if (byteLength < 0x100) {
      b[p++] = 0xd9;
      b[p++] = byteLength;
    } else if (byteLength < 0x10000) {
      b[p++] = 0xda;
      b[p++] = byteLength >>> 8;
      b[p++] = byteLength;
    } else {
      b[p++] = 0xdb;
      putU32(b, p, byteLength);
      p += 4;
    }
    this.pos = p;
  }

  /** Forward EventTime: fixext8, type 0, uint32 BE seconds, uint32 BE nanoseconds (reference forward-fluent-bit-devo.md §1). */
  eventTime(sec: number, nsec: number): void {
    this.ensure(10);
    this.eventTimeAt(this.pos, sec, nsec);
    this.pos += 10;
  }

  /** The same 10 bytes written at an earlier offset (to fill a reserved header). */
  eventTimeAt(offset: number, sec: number, nsec: number): void {
    const b = this.buf;
    b[offset] = 0xd7;
    b[offset + 1] = 0x00;
    putU32(b, offset + 2, sec);
    putU32(b, offset + 6, nsec);
  }

  /**
   * Encodes a plain JSON-compatible JS value (object, array, string, finite number, boolean, null;
   * integers that are safe integers as ints, other numbers float64; key order as Object.keys). For
   * the collector's own small records (status), not for audit records.
   *
   * Where a value is not JSON, this follows JSON.stringify so a status record reads the same in
   * both output formats: `toJSON()` is honoured (Date → ISO string), object members whose value is
   * undefined, a function or a symbol are left out, and those values inside arrays, like NaN and
   * ±Infinity anywhere, become nil. A bigint is written as an integer (int64/uint64 range).
   */
  value(v: unknown): void {
    switch (typeof v) {
      case 'string':
        this.str(v);
        return;
      case 'number':
        if (Number.isSafeInteger(v)) this.int(v);
        else if (Number.isFinite(v)) this.float64(v);
        else this.nil();
        return;
      case 'boolean':
        this.bool(v);
        return;
      case 'bigint':
        this.bigInt(v);
        return;
      case 'object':
        break;
      default: // undefined, function, symbol
        this.nil();
        return;
    }
    if (v === null) {
      this.nil();
      return;
    }
    const withJson = v as { toJSON?: unknown };
    if (typeof withJson.toJSON === 'function') {
      this.value((withJson.toJSON as () => unknown).call(v));
      return;
    }
    if (Array.isArray(v)) {
      this.arrayHeader(v.length);
      for (const item of v) this.value(item);
      return;
    }
    const obj = v as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => isJsonMember(obj[k]));
    this.mapHeader(keys.length);
    for (const k of keys) {
      this.str(k);
      this.value(obj[k]);
    }
  }
}

/** JSON.stringify leaves these members out of an object. */
function isJsonMember(v: unknown): boolean {
  const t = typeof v;
  return t !== 'undefined' && t !== 'function' && t !== 'symbol';
}

function putU32(b: Buffer, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = v >>> 16;
  b[p + 2] = v >>> 8;
  b[p + 3] = v;
}
