/**
 * A strict, typed msgpack decoder and a reference JSON → typed-value transcoder, for tests that
 * prove records travel as the same JSON value (DESIGN guarantee 6): int vs float, -0, exact 64-bit
 * integers, key order and duplicate keys are all visible, which @msgpack/msgpack 2.8 (the version
 * @fluent-org/logger brings) cannot show. The decoder also rejects any header or integer that is
 * not the smallest encoding.
 */
import assert from 'node:assert/strict';

// ---- typed values: what a msgpack byte sequence says, with int/float and key order kept ----------

export type V =
  | { t: 'nil' }
  | { t: 'bool'; v: boolean }
  | { t: 'int'; v: bigint }
  | { t: 'float'; v: number }
  | { t: 'str'; v: string }
  | { t: 'arr'; v: V[] }
  | { t: 'map'; v: [V, V][] };

export const NIL: V = { t: 'nil' };
export const B = (v: boolean): V => ({ t: 'bool', v });
export const I = (v: bigint | number): V => ({ t: 'int', v: BigInt(v) });
export const F = (v: number): V => ({ t: 'float', v });
export const S = (v: string): V => ({ t: 'str', v });
export const A = (...v: V[]): V => ({ t: 'arr', v });
export const M = (...pairs: [string, V][]): V => ({ t: 'map', v: pairs.map(([k, v]) => [S(k), v]) });

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Smallest msgpack size of an integer (msgpack spec: fixint, then 8/16/32/64-bit forms). */
function minimalIntSize(v: bigint): number {
  if (v >= 0n) return v < 128n ? 1 : v < 256n ? 2 : v < 65536n ? 3 : v < 2n ** 32n ? 5 : 9;
  return v >= -32n ? 1 : v >= -128n ? 2 : v >= -32768n ? 3 : v >= -(2n ** 31n) ? 5 : 9;
}

/** Decodes exactly one msgpack value filling buf[start, end); throws on anything non-minimal or malformed. */
export function mpDecode(buf: Uint8Array, start = 0, end = buf.length): V {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = start;
  const need = (n: number) => {
    if (p + n > end) throw new Error(`msgpack: truncated at ${p}`);
  };
  const len = (kind: string, n: number, headerBytes: number) => {
    const min = n < (kind === 'str' ? 32 : 16) ? 1 : n < 256 && kind === 'str' ? 2 : n < 65536 ? 3 : 5;
    if (headerBytes !== min) throw new Error(`msgpack: non-minimal ${kind} header (${headerBytes} bytes for ${n})`);
    return n;
  };
  const int = (v: bigint, size: number): V => {
    if (size !== minimalIntSize(v)) throw new Error(`msgpack: non-minimal int ${v} (${size} bytes)`);
    return I(v);
  };
  const str = (n: number): V => {
    need(n);
    const s = utf8Strict.decode(buf.subarray(p, p + n));
    p += n;
    return S(s);
  };
  const arr = (n: number): V => {
    const v: V[] = [];
    for (let i = 0; i < n; i++) v.push(one());
    return { t: 'arr', v };
  };
  const map = (n: number): V => {
    const v: [V, V][] = [];
    for (let i = 0; i < n; i++) {
      const k = one();
      v.push([k, one()]);
    }
    return { t: 'map', v };
  };
  function one(): V {
    need(1);
    const c = buf[p++]!;
    if (c < 0x80) return int(BigInt(c), 1);
    if (c >= 0xe0) return int(BigInt(c - 256), 1);
    if ((c & 0xf0) === 0x80) return map(len('map', c & 0x0f, 1));
    if ((c & 0xf0) === 0x90) return arr(len('array', c & 0x0f, 1));
    if ((c & 0xe0) === 0xa0) return str(len('str', c & 0x1f, 1));
    const u = (n: number) => {
      need(n);
      const v = n === 1 ? dv.getUint8(p) : n === 2 ? dv.getUint16(p) : dv.getUint32(p);
      p += n;
      return v;
    };
    switch (c) {
      case 0xc0:
        return NIL;
      case 0xc2:
        return B(false);
      case 0xc3:
        return B(true);
      case 0xcb: {
        need(8);
        const v = dv.getFloat64(p);
        p += 8;
        return F(v);
      }
      case 0xcc:
        return int(BigInt(u(1)), 2);
      case 0xcd:
        return int(BigInt(u(2)), 3);
      case 0xce:
        return int(BigInt(u(4)), 5);
      case 0xcf: {
        need(8);
        const v = dv.getBigUint64(p);
        p += 8;
        return int(v, 9);
      }
      case 0xd0:
        return int(BigInt(dv.getInt8((need(1), p++))), 2);
      case 0xd1: {
        need(2);
        const v = dv.getInt16(p);
        p += 2;
        return int(BigInt(v), 3);
      }
      case 0xd2: {
        need(4);
        const v = dv.getInt32(p);
        p += 4;
        return int(BigInt(v), 5);
      }
      case 0xd3: {
        need(8);
        const v = dv.getBigInt64(p);
        p += 8;
        return int(v, 9);
      }
      case 0xd9:
        return str(len('str', u(1), 2));
      case 0xda:
        return str(len('str', u(2), 3));
      case 0xdb:
        return str(len('str', u(4), 5));
      case 0xdc:
        return arr(len('array', u(2), 3));
      case 0xdd:
        return arr(len('array', u(4), 5));
      case 0xde:
        return map(len('map', u(2), 3));
      case 0xdf:
        return map(len('map', u(4), 5));
      default:
        throw new Error(`msgpack: unexpected type byte 0x${c.toString(16)} at ${p - 1}`);
    }
  }
  const v = one();
  if (p !== end) throw new Error(`msgpack: ${end - p} bytes left over`);
  return v;
}

/** A typed value as text that keeps everything deepEqual would check (bigint, -0, ±Infinity, NaN), and compares fast on big values. */
export function canon(v: V): string {
  switch (v.t) {
    case 'nil':
      return 'nil';
    case 'bool':
      return String(v.v);
    case 'int':
      return `${v.v}n`;
    case 'float':
      return Object.is(v.v, -0) ? 'f-0' : `f${v.v}`; // String(number) round-trips, so it is unique
    case 'str':
      return JSON.stringify(v.v);
    case 'arr':
      return `[${v.v.map(canon).join(',')}]`;
    case 'map':
      return `{${v.v.map(([k, x]) => `${canon(k)}:${canon(x)}`).join(',')}}`;
  }
}

/** Asserts two typed values are the same; for big values whose deepEqual would take seconds. */
export function sameValue(actual: V, expected: V, message: string): void {
  const a = canon(actual);
  const e = canon(expected);
  if (a !== e) assert.deepEqual(actual, expected, message); // shows a readable diff
  assert.equal(a, e, message);
}

/** What JSON.parse gives, with each lone surrogate replaced by U+FFFD (the codec's documented rule). */
export function wellFormed(v: unknown): unknown {
  if (typeof v === 'string') return Buffer.from(v, 'utf8').toString('utf8');
  if (Array.isArray(v)) return v.map(wellFormed);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [wellFormed(k), wellFormed(x)]));
  return v;
}

/** A typed value as the JS value JSON.parse gives (maps → objects, so the last duplicate wins). */
export function toJs(v: V): unknown {
  switch (v.t) {
    case 'nil':
      return null;
    case 'int':
      return Number(v.v);
    case 'arr':
      return v.v.map(toJs);
    case 'map': {
      const o: Record<string, unknown> = {};
      for (const [k, x] of v.v) o[(k as { v: string }).v] = toJs(x);
      return o;
    }
    default:
      return v.v;
  }
}

// ---- reference transcoder: simple and slow, for valid JSON only ---------------------------------

const RE_WS = /[ \t\n\r]*/y;
const RE_STR = /"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y;
const RE_NUM = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

/** The typed value the codec promises for one JSON text (DESIGN.md guarantee 6, rules in json-records.ts). */
export function reference(text: string): V {
  let i = 0;
  const tok = (re: RegExp): string | undefined => {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) return undefined;
    i = re.lastIndex;
    return m[0];
  };
  const ws = () => tok(RE_WS);
  // JSON.parse resolves the escapes; a lone surrogate it leaves in the string becomes U+FFFD in UTF-8.
  const str = (t: string) => S(Buffer.from(JSON.parse(t) as string, 'utf8').toString('utf8'));
  function value(): V {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const pairs: [V, V][] = [];
      ws();
      if (text[i] === '}') {
        i++;
        return { t: 'map', v: pairs };
      }
      for (;;) {
        ws();
        const k = str(tok(RE_STR)!);
        ws();
        i++; // ':'
        pairs.push([k, value()]);
        ws();
        if (text[i++] === '}') return { t: 'map', v: pairs };
      }
    }
    if (c === '[') {
      i++;
      const items: V[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return A();
      }
      for (;;) {
        items.push(value());
        ws();
        if (text[i++] === ']') return { t: 'arr', v: items };
      }
    }
    if (c === '"') return str(tok(RE_STR)!);
    if (text.startsWith('true', i)) return (i += 4), B(true);
    if (text.startsWith('false', i)) return (i += 5), B(false);
    if (text.startsWith('null', i)) return (i += 4), NIL;
    const n = tok(RE_NUM)!;
    if (/[.eE]/.test(n) || n === '-0') return F(Number(n));
    const big = BigInt(n);
    return big >= -(2n ** 63n) && big < 2n ** 64n ? I(big) : F(Number(n));
  }
  const v = value();
  ws();
  assert.equal(i, text.length, 'reference: trailing text');
  return v;
}

