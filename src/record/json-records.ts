/**
 * One pass over a content blob body (the UTF-8 text of a JSON array of audit records, reference
 * management-api.md §3.5) that
 *  - splits the array into elements, giving each element's exact byte range (the `devo` format
 *    forwards those bytes untouched: DESIGN.md guarantee 6),
 *  - validates JSON syntax exactly as strictly as JSON.parse (RFC 8259: no trailing commas, no
 *    comments, no raw control characters in strings, no leading zeros, no NaN, no BOM),
 *  - reads the three top-level string members routing needs (`Workload`, `CreationTime`, `Id`),
 *  - and, given a ByteWriter, transcodes each element straight into msgpack (the `record` format).
 *
 * Why not JSON.parse + a msgpack encoder: a JS object loses what DESIGN.md guarantee 6 promises to
 * keep (duplicate keys, the order of integer-like keys, integers beyond 2^53, the float-ness of
 * `1.50` or `1E1`, the sign of `-0`), and the round trip through JS values costs about 3× the CPU
 * (test/bench/codec.bench.ts).
 *
 * JSON value → msgpack, element by element:
 *  - object → map, members in text order, duplicate keys kept as separate pairs; array → array;
 *    `{}` / `[]` → empty map / array. Headers are the smallest that fit (fix/16/32).
 *  - string → str, escapes resolved to UTF-8. A lone UTF-16 surrogate escape (`\ud800` not followed
 *    by a low-surrogate escape, or a lone `\udc00`) becomes U+FFFD: UTF-8 cannot carry a lone
 *    surrogate, and U+FFFD is what TextEncoder / Buffer produce for the string JSON.parse returns.
 *  - integer literal → the smallest msgpack int when it fits int64 or uint64 (exact, even beyond
 *    2^53); outside that range → float64 (the nearest double, the value JSON.parse gives).
 *  - a literal with a fraction or an exponent → float64, even when its value is whole (`1.50` →
 *    1.5, `1E1` → 10.0, `1156492.00` → 1156492.0): the sender wrote a float. `1e400` → +Infinity,
 *    as JSON.parse gives. `-0` → float64 -0.0, the only msgpack value that keeps its sign.
 *  - true / false / null → bool / nil.
 */
import { isUtf8 } from 'node:buffer';
import type { ByteWriter } from './byte-writer.ts';

/** The body is not a JSON array, or not valid JSON. The message names the byte offset and what was expected; it never quotes the body (audit data is personal data). */
export class JsonBodyError extends Error {
  /** Byte offset in the body where the problem was found. */
  readonly offset: number;

  constructor(offset: number, what: string) {
    super(`content blob body is not a valid JSON array: ${what} at byte ${offset}`);
    this.name = 'JsonBodyError';
    this.offset = offset;
  }
}

/**
 * If `body` is valid UTF-8, returns it; otherwise a copy decoded/re-encoded the way TextDecoder does
 * (each invalid sequence → U+FFFD). A leading BOM is kept (`ignoreBOM`): this only repairs the
 * encoding, and the reader then rejects the BOM exactly as JSON.parse(body.toString()) would.
 */
export function ensureUtf8(body: Buffer): Buffer {
  if (isUtf8(body)) return body;
  return Buffer.from(new TextDecoder('utf-8', { ignoreBOM: true }).decode(body), 'utf8');
}

/** One element of the array. */
export interface RecordSlice {
  /** Byte range of the element in the body: its exact text, without surrounding whitespace. */
  start: number;
  end: number;
  /** What the element is: 'object' for a JSON object (an audit record); anything else is not a record. */
  kind: 'object' | 'array' | 'string' | 'number' | 'boolean' | 'null';
  /** Deepest container nesting, the element itself counting 1 ({} = 1, {"a":{"b":[]}} = 3); 0 for scalars. */
  depth: number;
  /** Top-level string members `Workload`, `CreationTime`, `Id` (exact, case-sensitive names), decoded (escapes resolved); the last occurrence wins, as with JSON.parse; undefined when absent or not a string. */
  workload?: string;
  creationTime?: string;
  id?: string;
  /** With a writer: the element's msgpack is at writer bytes [mpStart, mpEnd). -1 when not transcoded (no writer, or `tooDeep`). */
  mpStart: number;
  mpEnd: number;
  /**
   * The element nests deeper than `maxDepth` (always false without maxDepth). With a writer,
   * nothing of it stays in the writer (pos is back where it was before this element, reserved
   * bytes included).
   */
  tooDeep: boolean;
}

/** How RecordReader transcodes. */
export interface ReaderOptions {
  /**
   * Transcode every element to msgpack into this writer, appending at its `pos`. The reader keeps no
   * offsets into the writer between next() calls, so the caller may flush and reset it after any element.
   */
  writer?: ByteWriter;
  /** Bytes to skip in the writer before each element's msgpack (the caller fills them later: an entry header). Default 0. */
  reserve?: number;
  /** Elements nesting deeper than this are not transcoded (see tooDeep). Default: unlimited. Syntax is still validated. */
  maxDepth?: number;
}

// ---- byte classes (tables, not regexes or chained comparisons, in the inner loops) -------------

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const MINUS = 0x2d;
const ZERO = 0x30;
const DOT = 0x2e;
const LOWER_U = 0x75;

/** JSON whitespace (RFC 8259 §2): space, tab, LF, CR. JSON.parse accepts nothing else (not a BOM). */
const WS = new Uint8Array(256);
WS[0x20] = WS[0x09] = WS[0x0a] = WS[0x0d] = 1;

/** Bytes that end a run of plain string content: the closing quote, a backslash, a control character. */
const STR_STOP = new Uint8Array(256);
STR_STOP.fill(1, 0, 0x20);
STR_STOP[QUOTE] = STR_STOP[BACKSLASH] = 1;

/** Value of a one-character escape (`\n` → 0x0a …), 0 when the character is not one; `u` is handled apart. */
const ESCAPE = new Uint8Array(256);
ESCAPE[QUOTE] = QUOTE;
ESCAPE[BACKSLASH] = BACKSLASH;
ESCAPE[0x2f] = 0x2f; // '/'
ESCAPE[0x62] = 0x08; // b
ESCAPE[0x66] = 0x0c; // f
ESCAPE[0x6e] = 0x0a; // n
ESCAPE[0x72] = 0x0d; // r
ESCAPE[0x74] = 0x09; // t

/** Hex digit value, -1 for anything else. */
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX[0x30 + i] = i;
for (let i = 0; i < 6; i++) HEX[0x41 + i] = HEX[0x61 + i] = 10 + i;

/** Powers of ten that are exact doubles (10^0 … 10^22): the Clinger fast path for decimals. */
const POW10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));

const INT64_MIN = -(1n << 63n);
const UINT64_MAX = (1n << 64n) - 1n;

/** Routing members, as byte strings compared against raw (escape-free) keys. */
const KEY_WORKLOAD = Buffer.from('Workload');
const KEY_CREATION_TIME = Buffer.from('CreationTime');
const FIELD_NONE = 0;
const FIELD_WORKLOAD = 1;
const FIELD_CREATION_TIME = 2;
const FIELD_ID = 3;

const enum Phase {
  Start,
  Inside,
  Done,
  Failed,
}

/** Scratch space for decoding escaped routing keys/values into JS strings (rare: escapes in those members). */
let scratch = Buffer.allocUnsafe(256);

/**
 * Reads a blob body: a JSON array (whitespace around it allowed), in one pass. `next()` returns the
 * next element, or undefined after the closing bracket (then also checks nothing but whitespace
 * follows). Throws JsonBodyError on any syntax problem, at the element where it is found (elements
 * returned before that stay valid). The body must be valid UTF-8 (see ensureUtf8).
 */
export class RecordReader {
  private readonly b: Buffer;
  private readonly len: number;
  private p = 0;
  private phase = Phase.Start;
  private error: JsonBodyError | undefined;
  private readonly w: ByteWriter | undefined;
  private readonly reserve: number;
  private readonly maxDepth: number;
  /** Writer offset before the element being parsed (its reserved bytes included), to roll back; -1 between elements. */
  private elementStart = -1;
  /** Open containers of the current element: 1 = object, 0 = array. */
  private kinds = new Uint8Array(64);
  /** Writer offset of each open container's 1-byte header placeholder (when transcoding). */
  private headers = new Int32Array(64);
  /** Members counted so far in each open container. */
  private counts = new Int32Array(64);

  constructor(body: Buffer, opts: ReaderOptions = {}) {
    this.b = body;
    this.len = body.length;
    this.w = opts.writer;
    this.reserve = opts.reserve ?? 0;
    this.maxDepth = opts.maxDepth ?? Infinity;
  }

  /** The next element, or undefined after the closing `]`. */
  next(): RecordSlice | undefined {
    if (this.phase === Phase.Done) return undefined;
    if (this.phase === Phase.Failed) throw this.error!;
    const b = this.b;
    let p = this.skipWs(this.p);
    if (this.phase === Phase.Start) {
      if (b[p] !== LBRACKET) return this.fail(p, p < this.len ? "expected '[' (the body must be a JSON array)" : "expected '[' but the body is empty");
      p = this.skipWs(p + 1);
      this.phase = Phase.Inside;
      if (b[p] === RBRACKET) return this.finish(p + 1);
    } else if (b[p] === COMMA) {
      p = this.skipWs(p + 1);
    } else if (b[p] === RBRACKET) {
      return this.finish(p + 1);
    } else {
      return this.fail(p, p < this.len ? "expected ',' or ']' after an array element" : "unexpected end of body, expected ',' or ']'");
    }
    this.p = p;
    return this.element();
  }

  private finish(p: number): undefined {
    p = this.skipWs(p);
    if (p !== this.len) this.fail(p, "expected nothing but whitespace after the closing ']'");
    this.p = p;
    this.phase = Phase.Done;
    return undefined;
  }

  private fail(offset: number, what: string): never {
    // Roll back a half-transcoded element; elements returned earlier stay as they are.
    if (this.w && this.elementStart >= 0) this.w.pos = this.elementStart;
    this.phase = Phase.Failed;
    this.error = new JsonBodyError(offset, what);
    throw this.error;
  }

  private skipWs(p: number): number {
    const b = this.b;
    const len = this.len;
    while (p < len && WS[b[p]!] === 1) p++;
    return p;
  }

  /**
   * Parses one element at this.p: an iterative descent (an explicit stack, like V8's JSON.parse, so
   * deep nesting cannot overflow the JS stack). Containers get a 1-byte header placeholder that is
   * patched when they close; one with more than 15 members has its body moved right by 2 (or 4)
   * bytes to make room for a map16/array16 (map32/array32) header. An audit record (20–40 top-level
   * members) pays one move of its own size, about 2% of the transcode time in the profile of
   * test/bench/codec.bench.ts. The cost grows with nesting × size only when many nested levels each
   * hold more than 15 members; maxDepth bounds that.
   */
  private element(): RecordSlice {
    const b = this.b;
    const len = this.len;
    const w = this.w;
    const start = this.p;
    let p = start;
    let mpStart = -1;
    // `tr`: still transcoding this element (turned off for good once it nests too deep).
    let tr = false;
    if (w) {
      this.elementStart = w.pos;
      w.ensure(this.reserve);
      w.pos += this.reserve;
      mpStart = w.pos;
      tr = true;
    }
    const maxDepth = this.maxDepth;
    const first = b[p];
    const kind: RecordSlice['kind'] =
      first === LBRACE ? 'object' : first === LBRACKET ? 'array' : first === QUOTE ? 'string' : first === 0x74 || first === 0x66 ? 'boolean' : first === 0x6e ? 'null' : 'number';
    let sp = 0; // open containers
    let depth = 0;
    let field = FIELD_NONE; // routing member whose value comes next
    this.workload = this.creationTime = this.id = undefined;

    value: for (;;) {
      while (p < len && WS[b[p]!] === 1) p++;
      const c = b[p];
      if (field !== FIELD_NONE && c !== QUOTE) {
        // A routing member whose value is not a string reads as absent (the last occurrence wins).
        this.setField(field, undefined);
        field = FIELD_NONE;
      }
      // ---- one value (containers only open here; scalars are read completely) ----
      if (c === QUOTE) {
        const s = p + 1;
        const q = this.stringEnd(s);
        if (tr) {
          if (this.escaped) writeEscaped(w!, b, s, q);
          else putStr(w!, b, s, q);
        }
        if (field !== FIELD_NONE) {
          this.setField(field, this.escaped ? decodeToString(b, s, q) : b.toString('utf8', s, q));
          field = FIELD_NONE;
        }
        p = q + 1;
      } else if (c === LBRACE || c === LBRACKET) {
        if (sp === this.kinds.length) this.growStack();
        if (++sp > depth) {
          depth = sp;
          if (depth > maxDepth && tr) tr = false;
        }
        const isObj = c === LBRACE ? 1 : 0;
        this.kinds[sp - 1] = isObj;
        this.counts[sp - 1] = 0;
        if (tr) {
          this.headers[sp - 1] = w!.pos;
          w!.u8(0);
        }
        p++;
        while (p < len && WS[b[p]!] === 1) p++;
        if (b[p] === (isObj ? RBRACE : RBRACKET)) {
          p++;
          if (tr) w!.buf[this.headers[sp - 1]!] = isObj ? 0x80 : 0x90;
          sp--;
        } else {
          this.counts[sp - 1] = 1;
          if (isObj) {
            p = this.key(p, sp === 1, tr);
            field = this.lastField;
          }
          continue value;
        }
      } else if (c === MINUS || (c !== undefined && c >= ZERO && c <= 0x39)) {
        p = this.number(p, tr);
      } else if (c === 0x74 && b[p + 1] === 0x72 && b[p + 2] === 0x75 && b[p + 3] === 0x65) {
        if (tr) w!.u8(0xc3);
        p += 4;
      } else if (c === 0x66 && b[p + 1] === 0x61 && b[p + 2] === 0x6c && b[p + 3] === 0x73 && b[p + 4] === 0x65) {
        if (tr) w!.u8(0xc2);
        p += 5;
      } else if (c === 0x6e && b[p + 1] === 0x75 && b[p + 2] === 0x6c && b[p + 3] === 0x6c) {
        if (tr) w!.u8(0xc0);
        p += 4;
      } else {
        this.fail(p, p < len ? 'expected a value' : 'unexpected end of body, expected a value');
      }

      // ---- after a value: close containers until one wants another member ----
      for (;;) {
        if (sp === 0) break value;
        while (p < len && WS[b[p]!] === 1) p++;
        const d = b[p];
        const top = sp - 1;
        if (d === COMMA) {
          p++;
          this.counts[top]!++;
          if (this.kinds[top] === 1) {
            p = this.key(p, sp === 1, tr);
            field = this.lastField;
          }
          continue value;
        }
        if (this.kinds[top] === 1) {
          if (d !== RBRACE) this.fail(p, p < len ? "expected ',' or '}' after an object member" : "unexpected end of body, expected ',' or '}'");
        } else if (d !== RBRACKET) {
          this.fail(p, p < len ? "expected ',' or ']' after an array element" : "unexpected end of body, expected ',' or ']'");
        }
        p++;
        if (tr) closeHeader(w!, this.headers[top]!, this.counts[top]!, this.kinds[top] === 1);
        sp--;
      }
    }

    this.p = p;
    const tooDeep = depth > maxDepth;
    let mpEnd = -1;
    if (w) {
      if (tooDeep) {
        w.pos = this.elementStart;
        mpStart = -1;
      } else {
        mpEnd = w.pos;
      }
    }
    this.elementStart = -1;
    return { start, end: p, kind, depth, workload: this.workload, creationTime: this.creationTime, id: this.id, mpStart, mpEnd, tooDeep };
  }

  /** Routing member named by the last key read at the element's top level (FIELD_NONE otherwise). */
  private lastField = FIELD_NONE;

  /** Routing members of the current element. */
  private workload: string | undefined;
  private creationTime: string | undefined;
  private id: string | undefined;

  private setField(field: number, text: string | undefined): void {
    if (field === FIELD_WORKLOAD) this.workload = text;
    else if (field === FIELD_CREATION_TIME) this.creationTime = text;
    else this.id = text;
  }

  /**
   * Reads `"key"` `:` at p (whitespace allowed around), writes the key, and returns the offset after
   * the colon. At the element's top level, notes in lastField whether the key is a routing member.
   */
  private key(p: number, topLevel: boolean, tr: boolean): number {
    const b = this.b;
    const len = this.len;
    while (p < len && WS[b[p]!] === 1) p++;
    if (b[p] !== QUOTE) this.fail(p, p < len ? 'expected a string key in an object' : 'unexpected end of body, expected an object key');
    const s = p + 1;
    const q = this.stringEnd(s);
    const escaped = this.escaped;
    if (tr) {
      if (escaped) writeEscaped(this.w!, b, s, q);
      else putStr(this.w!, b, s, q);
    }
    this.lastField = topLevel ? routingField(b, s, q, escaped) : FIELD_NONE;
    p = q + 1;
    while (p < len && WS[b[p]!] === 1) p++;
    if (b[p] !== COLON) this.fail(p, p < len ? "expected ':' after an object key" : "unexpected end of body, expected ':'");
    return p + 1;
  }

  /** Whether the string stringEnd() last scanned has escapes (then it must be decoded, not copied). */
  private escaped = false;

  /**
   * Scans string content starting at s (after the opening quote) and returns the offset of the
   * closing quote. Validates escapes and refuses raw control characters, as JSON.parse does
   * (RFC 8259 §7). Byte-wise scanning is safe on UTF-8: a quote, a backslash or a byte below 0x20
   * never occurs inside a multi-byte sequence.
   */
  private stringEnd(s: number): number {
    const b = this.b;
    const len = this.len;
    let q = s;
    let escaped = false;
    for (;;) {
      while (q < len && STR_STOP[b[q]!] === 0) q++;
      const d = b[q];
      if (d === QUOTE) break;
      if (d === BACKSLASH) {
        escaped = true;
        q = this.checkEscape(q);
      } else {
        this.fail(q, q < len ? 'control character (below 0x20) inside a string; it must be escaped' : 'unexpected end of body inside a string');
      }
    }
    this.escaped = escaped;
    return q;
  }

  /** Validates the escape at q (a backslash) and returns the offset after it. */
  private checkEscape(q: number): number {
    const b = this.b;
    const e = b[q + 1];
    if (e === LOWER_U) {
      if ((HEX[b[q + 2]!]! | HEX[b[q + 3]!]! | HEX[b[q + 4]!]! | HEX[b[q + 5]!]!) < 0 || q + 6 > this.len) {
        this.fail(q, 'invalid \\u escape: expected four hex digits');
      }
      return q + 6;
    }
    if (e === undefined || ESCAPE[e] === 0) this.fail(q, q + 1 < this.len ? 'invalid escape in a string' : 'unexpected end of body inside a string');
    return q + 2;
  }

  /** Reads a number literal at p, writes it when transcoding, returns the offset after it. */
  private number(p: number, tr: boolean): number {
    const b = this.b;
    const s = p;
    let neg = false;
    if (b[p] === MINUS) {
      neg = true;
      p++;
    }
    let c = b[p];
    let mant = 0; // digits read so far, exact while digits <= 15
    let digits = 0;
    if (c === ZERO) {
      p++;
      digits = 1;
      c = b[p];
      if (c !== undefined && c >= ZERO && c <= 0x39) this.fail(p, 'leading zero in a number');
    } else if (c !== undefined && c > ZERO && c <= 0x39) {
      do {
        mant = mant * 10 + (c - ZERO);
        digits++;
        c = b[++p];
      } while (c !== undefined && c >= ZERO && c <= 0x39);
    } else {
      this.fail(p, "expected a digit after '-'");
    }
    const intDigits = digits;
    let isFloat = false;
    let frac = 0;
    if (c === DOT) {
      isFloat = true;
      c = b[++p];
      if (c === undefined || c < ZERO || c > 0x39) this.fail(p, "expected a digit after '.' in a number");
      do {
        mant = mant * 10 + (c - ZERO);
        digits++;
        frac++;
        c = b[++p];
      } while (c !== undefined && c >= ZERO && c <= 0x39);
    }
    let exp = 0;
    if (c === 0x65 || c === 0x45) {
      isFloat = true;
      c = b[++p];
      let expNeg = false;
      if (c === 0x2b || c === MINUS) {
        expNeg = c === MINUS;
        c = b[++p];
      }
      if (c === undefined || c < ZERO || c > 0x39) this.fail(p, 'expected a digit in the exponent of a number');
      do {
        exp = exp * 10 + (c - ZERO); // a huge exponent only sends the literal down the slow path below
        c = b[++p];
      } while (c !== undefined && c >= ZERO && c <= 0x39);
      if (expNeg) exp = -exp;
    }
    if (!tr) return p;
    const w = this.w!;
    if (!isFloat) {
      if (intDigits <= 15) {
        // ≤ 15 digits is below 2^53: the accumulated value is exact.
        if (neg) {
          if (mant === 0) w.float64(-0);
          else w.int(-mant);
        } else {
          w.int(mant);
        }
      } else {
        // Rare: a long integer literal. Exact through BigInt when it fits int64/uint64.
        const text = b.toString('latin1', s, p);
        const big = BigInt(text);
        if (big >= INT64_MIN && big <= UINT64_MAX) w.bigInt(big);
        else w.float64(Number(text));
      }
      return p;
    }
    // Clinger's fast path: an exact mantissa (< 2^53) times or divided by an exact power of ten is
    // one correctly rounded IEEE operation, so it equals the correctly rounded decimal JSON.parse gives.
    const e10 = exp - frac;
    let v: number;
    if (digits <= 15 && e10 >= -22 && e10 <= 22) v = e10 >= 0 ? mant * POW10[e10]! : mant / POW10[-e10]!;
    else v = Number(b.toString('latin1', neg ? s + 1 : s, p));
    w.float64(neg ? -v : v);
    return p;
  }

  private growStack(): void {
    const n = this.kinds.length * 2;
    const kinds = new Uint8Array(n);
    kinds.set(this.kinds);
    this.kinds = kinds;
    const headers = new Int32Array(n);
    headers.set(this.headers);
    this.headers = headers;
    const counts = new Int32Array(n);
    counts.set(this.counts);
    this.counts = counts;
  }
}

/** Which routing member (if any) the key bytes [s, e) name. */
function routingField(b: Buffer, s: number, e: number, escaped: boolean): number {
  if (escaped) {
    // Rare: an escaped key ("W\u006frkload") is still the same member for JSON.parse.
    const k = decodeToString(b, s, e);
    return k === 'Workload' ? FIELD_WORKLOAD : k === 'CreationTime' ? FIELD_CREATION_TIME : k === 'Id' ? FIELD_ID : FIELD_NONE;
  }
  const n = e - s;
  if (n === 2) return b[s] === 0x49 && b[s + 1] === 0x64 ? FIELD_ID : FIELD_NONE;
  if (n === 8) return sameBytes(b, s, KEY_WORKLOAD) ? FIELD_WORKLOAD : FIELD_NONE;
  if (n === 12) return sameBytes(b, s, KEY_CREATION_TIME) ? FIELD_CREATION_TIME : FIELD_NONE;
  return FIELD_NONE;
}

function sameBytes(b: Buffer, s: number, key: Buffer): boolean {
  for (let i = 0; i < key.length; i++) if (b[s + i] !== key[i]) return false;
  return true;
}

/** Patches a container's 1-byte placeholder at `hdr` for `n` members, moving the body right when the header needs 3 or 5 bytes. */
function closeHeader(w: ByteWriter, hdr: number, n: number, isMap: boolean): void {
  if (n < 16) {
    w.buf[hdr] = (isMap ? 0x80 : 0x90) | n;
    return;
  }
  const extra = n < 0x10000 ? 2 : 4;
  w.ensure(extra);
  const b = w.buf;
  b.copyWithin(hdr + 1 + extra, hdr + 1, w.pos);
  w.pos += extra;
  if (extra === 2) {
    b[hdr] = isMap ? 0xde : 0xdc;
    b[hdr + 1] = n >>> 8;
    b[hdr + 2] = n;
  } else {
    b[hdr] = isMap ? 0xdf : 0xdd;
    b[hdr + 1] = n >>> 24;
    b[hdr + 2] = n >>> 16;
    b[hdr + 3] = n >>> 8;
    b[hdr + 4] = n;
  }
}

/** Below this many bytes a JS loop copies faster than Buffer#copy's native call (test/bench/codec.bench.ts). */
const SHORT_COPY = 32;

/** An escape-free string [s, e) of the body as msgpack str: header + the bytes as they are. */
function putStr(w: ByteWriter, b: Buffer, s: number, e: number): void {
  const n = e - s;
  w.ensure(n + 5);
  const out = w.buf;
  let o = w.pos;
  if (n < 32) {
    out[o++] = 0xa0 | n;
  } else if (n < 0x100) {
    out[o++] = 0xd9;
    out[o++] = n;
  } else if (n < 0x10000) {
    out[o++] = 0xda;
    out[o++] = n >>> 8;
    out[o++] = n;
  } else {
    out[o++] = 0xdb;
    out[o++] = n >>> 24;
    out[o++] = n >>> 16;
    out[o++] = n >>> 8;
    out[o++] = n;
  }
  if (n < SHORT_COPY) {
    for (let i = s; i < e; i++) out[o++] = b[i]!;
  } else {
    b.copy(out, o, s, e);
    o += n;
  }
  w.pos = o;
}

/** Size of the smallest str header for n bytes. */
function strHeaderSize(n: number): number {
  return n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

/**
 * Writes the (already validated) escaped string content [s, e) as a msgpack str. The decoded text
 * is never longer than the escaped text, so it is decoded after a header sized for the escaped
 * length and moved left in the rare case that a smaller header fits the decoded length.
 */
function writeEscaped(w: ByteWriter, b: Buffer, s: number, e: number): void {
  const hdr = strHeaderSize(e - s);
  w.ensure(hdr + (e - s));
  const at = w.pos;
  const end = decodeEscapes(b, s, e, w.buf, at + hdr);
  const n = end - (at + hdr);
  const realHdr = strHeaderSize(n);
  if (realHdr !== hdr) w.buf.copyWithin(at + realHdr, at + hdr, end);
  w.strHeader(n);
  w.pos += n;
}

/** The (already validated) escaped string content [s, e) as a JS string. */
function decodeToString(b: Buffer, s: number, e: number): string {
  if (scratch.length < e - s) scratch = Buffer.allocUnsafe(Math.max(e - s, scratch.length * 2));
  const end = decodeEscapes(b, s, e, scratch, 0);
  return scratch.toString('utf8', 0, end);
}

/**
 * Decodes validated string content [s, e) of `b` into `out` at `o` as UTF-8; returns the end offset.
 * A surrogate pair of escapes becomes one 4-byte character; a lone surrogate becomes U+FFFD.
 */
function decodeEscapes(b: Buffer, s: number, e: number, out: Buffer, o: number): number {
  let q = s;
  while (q < e) {
    const c = b[q]!;
    if (c !== BACKSLASH) {
      out[o++] = c;
      q++;
      continue;
    }
    const t = b[q + 1]!;
    if (t !== LOWER_U) {
      out[o++] = ESCAPE[t]!;
      q += 2;
      continue;
    }
    let cp = hex4(b, q + 2);
    q += 6;
    if (cp >= 0xd800 && cp <= 0xdfff) {
      if (cp <= 0xdbff && q + 6 <= e && b[q] === BACKSLASH && b[q + 1] === LOWER_U) {
        const lo = hex4(b, q + 2);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          q += 6;
        } else {
          cp = 0xfffd;
        }
      } else {
        cp = 0xfffd;
      }
    }
    if (cp < 0x80) {
      out[o++] = cp;
    } else if (cp < 0x800) {
      out[o++] = 0xc0 | (cp >> 6);
      out[o++] = 0x80 | (cp & 0x3f);
    } else if (cp < 0x10000) {
      out[o++] = 0xe0 | (cp >> 12);
      out[o++] = 0x80 | ((cp >> 6) & 0x3f);
      out[o++] = 0x80 | (cp & 0x3f);
    } else {
      out[o++] = 0xf0 | (cp >> 18);
      out[o++] = 0x80 | ((cp >> 12) & 0x3f);
      out[o++] = 0x80 | ((cp >> 6) & 0x3f);
      out[o++] = 0x80 | (cp & 0x3f);
    }
  }
  return o;
}

function hex4(b: Buffer, q: number): number {
  return (HEX[b[q]!]! << 12) | (HEX[b[q + 1]!]! << 8) | (HEX[b[q + 2]!]! << 4) | HEX[b[q + 3]!]!;
}
