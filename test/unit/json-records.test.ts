/**
 * The record codec: blob bytes → element ranges + routing fields + msgpack (src/record/).
 *
 * msgpack output is read back with a small strict decoder written here (below) rather than
 * @msgpack/msgpack: that one (2.8.0, the version @fluent-org/logger brings) has no useBigInt64,
 * turns a uint64 into an inexact number and cannot tell the float 10.0 from the integer 10, which
 * are exactly the things to check. The decoder also rejects any header or integer that is not the
 * smallest encoding. Expected values come from hand-written tables, and for bulk inputs from a
 * deliberately simple reference transcoder (regex tokens + JSON.parse for each leaf).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';
import { ByteWriter } from '../../src/record/byte-writer.ts';
import { A, B, F, I, M, NIL, S, mpDecode, reference, sameValue, toJs, wellFormed, type V } from '../helpers/msgpack-typed.ts';
import { JsonBodyError, RecordReader, ensureUtf8, type ReaderOptions, type RecordSlice } from '../../src/record/json-records.ts';
import { Rng } from '../../src/simulator/prng.ts';

// ---- helpers ------------------------------------------------------------------------------------

interface Read {
  slices: RecordSlice[];
  writer: ByteWriter;
}

/** Reads a whole body with a writer; returns the slices. */
function readAll(body: Buffer | string, opts: Omit<ReaderOptions, 'writer'> = {}, writer = new ByteWriter(64)): Read {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  const r = new RecordReader(buf, { ...opts, writer });
  const slices: RecordSlice[] = [];
  for (let s = r.next(); s; s = r.next()) slices.push(s);
  assert.equal(r.next(), undefined, 'next() after the end stays undefined');
  return { slices, writer };
}

function decodeSlice(w: ByteWriter, s: RecordSlice): V {
  return mpDecode(w.buf, s.mpStart, s.mpEnd);
}

/** Whether JSON.parse accepts the body as an array (what the reader must agree with). */
function jsonParseAccepts(body: Buffer): boolean {
  try {
    return Array.isArray(JSON.parse(body.toString()));
  } catch {
    return false;
  }
}

/** The simulator's seeded PRNG (mulberry32), as a function. */
function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

/** Realistic audit records (shapes of the Management API schema, reference management-api.md §7), ~1–2 KB each. */
function realisticRecords(n: number, seed: number): string[] {
  const rnd = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(a: readonly T[]) => a[int(0, a.length - 1)]!;
  const hex = (k: number) => Array.from({ length: k }, () => '0123456789abcdef'[int(0, 15)]).join('');
  const guid = () => `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`;
  const time = () => new Date(Date.UTC(2024, int(0, 11), int(1, 28), int(0, 23), int(0, 59), int(0, 59))).toISOString().slice(0, 19);
  const names = ['Adele Vance', 'José Álvarez', 'Zoë Müller', '李娜', 'Siobhán O\'Brien', 'Roadmap 🚀 FY25.pptx', 'Contract "Northwind".pdf', 'C:\\temp\\x.txt', 'tab\there', 'ctl\u0001\u001f'];
  const out: string[] = [];
  for (let k = 0; k < n; k++) {
    const rec: Record<string, unknown> = {
      CreationTime: time(),
      Id: guid(),
      Operation: pick(['FileAccessed', 'UserLoggedIn', 'Set-Mailbox', 'MailItemsAccessed', 'TeamCreated']),
      OrganizationId: guid(),
      RecordType: int(1, 300),
      ResultStatus: pick(['Succeeded', 'Success', 'True', 'Failed']),
      UserKey: `i:0h.f|membership|${hex(16)}@live.com`,
      UserType: int(0, 5),
      Version: 1,
      Workload: pick(['Exchange', 'SharePoint', 'OneDrive', 'AzureActiveDirectory', 'MicrosoftTeams', 'Yammer']),
      ClientIP: pick([`${int(1, 223)}.${int(0, 255)}.${int(0, 255)}.${int(1, 254)}`, `[2603:10a6:${hex(4)}::${hex(2)}]:${int(1024, 65535)}`]),
      ObjectId: `https://contoso.sharepoint.com/sites/${pick(['finance', 'hr'])}/Shared Documents/${pick(names)}`,
      UserId: pick(['adele.vance@contoso.com', 'NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)']),
      AppAccessContext: { AADSessionId: guid(), CorrelationId: guid(), UniqueTokenId: hex(22) },
      ExtendedProperties: Array.from({ length: int(0, 20) }, (_, i) => ({ Name: `Prop${i}`, Value: pick(['true', '', pick(names), guid()]) })),
      ModifiedProperties: [],
      Target: [{ ID: guid(), Type: int(0, 5) }],
      DeviceProperties: int(0, 1) ? [{ Name: 'OS', Value: 'Windows 10' }, { Name: 'SessionId', Value: guid() }] : {},
      AdditionalDetails: JSON.stringify({ riskLevel: 'none', nested: { a: [1, 2, 3] } }),
      FileSizeBytes: int(0, 2 ** 40),
      RiskScore: pick([0.25, 1.5, -3.75, 0, 1e-7]),
      Flags: [true, false, null],
      UserAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80',
    };
    out.push(JSON.stringify(rec));
  }
  return out;
}

// ---- ByteWriter ---------------------------------------------------------------------------------

test('ByteWriter ints use the smallest encoding at every boundary (same bytes as @msgpack/msgpack)', () => {
  const values = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53) + 1];
  for (const v of values) {
    const w = new ByteWriter(1); // grows on the first write
    w.int(v);
    assert.deepEqual(w.copy(), Buffer.from(msgpackEncode(v)), `int ${v}`);
    assert.deepEqual(mpDecode(w.copy()), I(v));
  }
  for (const bad of [1.5, 2 ** 53, NaN, Infinity, -(2 ** 53)]) {
    const w = new ByteWriter();
    assert.throws(() => w.int(bad), RangeError);
    assert.equal(w.pos, 0, `nothing written for ${bad}`);
  }
});

test('ByteWriter bigInt covers int64/uint64 exactly and refuses beyond', () => {
  const cases: [bigint, string][] = [
    [2n ** 64n - 1n, 'cfffffffffffffffff'],
    [2n ** 63n, 'cf8000000000000000'],
    [2n ** 53n + 1n, 'cf0020000000000001'],
    [-(2n ** 63n), 'd38000000000000000'],
    [-(2n ** 53n) - 1n, 'd3ffdfffffffffffff'],
    [5n, '05'],
    [-5n, 'fb'],
  ];
  for (const [v, hex] of cases) {
    const w = new ByteWriter();
    w.bigInt(v);
    assert.equal(w.copy().toString('hex'), hex, `bigInt ${v}`);
  }
  assert.throws(() => new ByteWriter().bigInt(2n ** 64n), RangeError);
  assert.throws(() => new ByteWriter().bigInt(-(2n ** 63n) - 1n), RangeError);
});

test('ByteWriter float64, strings, headers, event time', () => {
  const w = new ByteWriter(4);
  w.float64(-0);
  assert.equal(w.copy().toString('hex'), 'cb8000000000000000');
  w.reset();
  assert.equal(w.pos, 0);
  w.str('a\ud800b\udc00'); // lone surrogates → U+FFFD
  assert.deepEqual(mpDecode(w.copy()), S('a\ufffdb\ufffd'));
  w.reset();
  w.str('😀é');
  assert.equal(w.copy().toString('hex'), 'a6f09f9880c3a9');
  for (const n of [0, 31, 32, 255, 256, 65535, 65536]) {
    const s = 'x'.repeat(n);
    const v = new ByteWriter(8);
    v.str(s);
    assert.deepEqual(v.copy(), Buffer.from(msgpackEncode(s)), `str of ${n}`);
    const u = new ByteWriter(8);
    u.strBytes(Buffer.from(`<${s}>`), 1, n + 1);
    assert.deepEqual(u.copy(), v.copy(), `strBytes of ${n}`);
  }
  const h = (f: (x: ByteWriter) => void) => {
    const x = new ByteWriter();
    f(x);
    return x.copy().toString('hex');
  };
  assert.equal(h((x) => x.mapHeader(15)), '8f');
  assert.equal(h((x) => x.mapHeader(16)), 'de0010');
  assert.equal(h((x) => x.mapHeader(65536)), 'df00010000');
  assert.equal(h((x) => x.arrayHeader(15)), '9f');
  assert.equal(h((x) => x.arrayHeader(65535)), 'dcffff');
  assert.equal(h((x) => x.arrayHeader(65536)), 'dd00010000');
  assert.equal(h((x) => x.binHeader(255)), 'c4ff');
  assert.equal(h((x) => x.binHeader(256)), 'c50100');
  assert.equal(h((x) => x.binHeader(65536)), 'c600010000');
  assert.equal(h((x) => x.strHeader(31)), 'bf');
  assert.equal(h((x) => x.strHeader(255)), 'd9ff');
  assert.equal(h((x) => x.strHeader(256)), 'da0100');
  assert.equal(h((x) => x.strHeader(65536)), 'db00010000');
  assert.equal(h((x) => (x.u8(0x92), x.u16(0x1234), x.u32(0xdeadbeef))), '921234deadbeef');
  // Forward EventTime (reference forward-fluent-bit-devo.md §1): D7 00, seconds, nanoseconds.
  assert.equal(h((x) => x.eventTime(1_700_000_000, 123_456_789)), 'd7006553f100075bcd15');
  const e = new ByteWriter();
  e.u8(0x92);
  e.pos += 10;
  e.nil();
  e.eventTimeAt(1, 0xffffffff, 999_999_999);
  assert.equal(e.copy().toString('hex'), '92d700ffffffff3b9ac9ffc0');
  assert.equal(e.copy(1, 3).toString('hex'), 'd700');
});

test('ByteWriter grows without losing bytes and raw copies ranges', () => {
  const w = new ByteWriter(16);
  const src = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
  for (let i = 0; i < 50; i++) w.raw(src, i, i + 1 + ((i * 7) % 120));
  const expected = Buffer.concat(Array.from({ length: 50 }, (_, i) => src.subarray(i, i + 1 + ((i * 7) % 120))));
  assert.deepEqual(w.copy(), expected);
  w.reset();
  w.raw(src);
  assert.deepEqual(w.copy(), src);
});

test('ByteWriter.value encodes plain values like @msgpack/msgpack and JSON.stringify', () => {
  const status = { tag: 'status', feed: { tenant: 't', lagSeconds: 12.5, counts: [1, 2 ** 40, -7] }, ok: true, err: null, empty: {}, list: [] };
  const w = new ByteWriter();
  w.value(status);
  assert.deepEqual(w.copy(), Buffer.from(msgpackEncode(status)));
  const odd = new ByteWriter();
  odd.value({ a: undefined, b: () => 1, c: [undefined, NaN, Infinity], d: new Date(0), e: 2 ** 53, f: 10n });
  assert.deepEqual(mpDecode(odd.copy()), M(['c', A(NIL, NIL, NIL)], ['d', S('1970-01-01T00:00:00.000Z')], ['e', F(2 ** 53)], ['f', I(10)]));
});

// ---- the reader: hard shapes, compared exactly ---------------------------------------------------

const big = (n: number, item: string) => Array.from({ length: n }, () => item).join(',');
const HARD: { name: string; json: string; want: V }[] = [
  { name: '2^53+1', json: '9007199254740993', want: I(2n ** 53n + 1n) },
  { name: '2^63-1', json: '9223372036854775807', want: I(2n ** 63n - 1n) },
  { name: '2^64-1', json: '18446744073709551615', want: I(2n ** 64n - 1n) },
  { name: '-2^63', json: '-9223372036854775808', want: I(-(2n ** 63n)) },
  { name: '2^64 → float', json: '18446744073709551616', want: F(2 ** 64) },
  { name: '-2^63-1 → float', json: '-9223372036854775809', want: F(-(2 ** 63)) },
  { name: '16 digits', json: '1234567890123456', want: I(1234567890123456n) },
  { name: '15 digits', json: '-999999999999999', want: I(-999999999999999n) },
  { name: 'huge integer', json: '1' + '0'.repeat(400), want: F(Infinity) },
  { name: '-0', json: '-0', want: F(-0) },
  { name: '0', json: '0', want: I(0) },
  { name: '-0.0', json: '-0.0', want: F(-0) },
  { name: '0.0', json: '0.0', want: F(0) },
  { name: '-0e3', json: '-0e3', want: F(-0) },
  { name: '1E1', json: '1E1', want: F(10) },
  { name: '1e+2', json: '1e+2', want: F(100) },
  { name: '1e-7', json: '1e-7', want: F(1e-7) },
  { name: '1.50', json: '1.50', want: F(1.5) },
  { name: '1156492.00', json: '1156492.00', want: F(1156492) },
  { name: '-1.0', json: '-1.0', want: F(-1) },
  { name: '0.1', json: '0.1', want: F(0.1) },
  { name: '0.30000000000000004', json: '0.30000000000000004', want: F(0.30000000000000004) },
  { name: '1e22 (fast path edge)', json: '1e22', want: F(1e22) },
  { name: '1e23 (slow path)', json: '1e23', want: F(1e23) },
  { name: '123e-20', json: '123e-20', want: F(123e-20) },
  { name: '9007199254740993.0', json: '9007199254740993.0', want: F(9007199254740992) },
  { name: 'min subnormal', json: '4.9e-324', want: F(5e-324) },
  { name: 'underflow', json: '1e-400', want: F(0) },
  { name: 'overflow', json: '-1e400', want: F(-Infinity) },
  { name: 'max double', json: '1.7976931348623157e308', want: F(1.7976931348623157e308) },
  { name: 'hard rounding', json: '2.2250738585072011e-308', want: F(2.2250738585072011e-308) },
  // 17 significant digits: the mantissa is not exact as a double, so the fast path must not be used.
  { name: '17 digits (a)', json: '114727.48340378773', want: F(114727.48340378773) },
  { name: '17 digits (b)', json: '23484157886.509345', want: F(23484157886.509345) },
  { name: 'long mantissa', json: '123456789012345678901234567890.5', want: F(123456789012345678901234567890.5) },
  { name: 'int boundaries', json: '[127,128,255,256,65535,65536,4294967295,4294967296,9007199254740991,-32,-33,-128,-129,-32768,-32769,-2147483648,-2147483649,-9007199254740991]', want: A(...[127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 9007199254740991, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, -9007199254740991].map(I)) },
  { name: 'integer-like keys keep text order', json: '{"2":1,"1":2}', want: M(['2', I(1)], ['1', I(2)]) },
  { name: 'duplicate keys kept in order', json: '{"a":1,"b":2,"a":3}', want: M(['a', I(1)], ['b', I(2)], ['a', I(3)]) },
  { name: 'BMP and astral UTF-8', json: '"é中😀"', want: S('é中😀') },
  { name: 'escaped BMP and pair', json: '"\\u00e9\\u4E2D\\ud83d\\uDE00"', want: S('é中😀') },
  { name: 'lone high surrogate', json: '"a\\ud800b"', want: S('a\ufffdb') },
  { name: 'lone high surrogate at end', json: '"\\ud800"', want: S('\ufffd') },
  { name: 'lone low surrogate', json: '"\\udc00"', want: S('\ufffd') },
  { name: 'high then high+low', json: '"\\ud800\\ud800\\udc00"', want: S('\ufffd\u{10000}') },
  { name: 'high then non-surrogate escape', json: '"\\ud83d\\u0041"', want: S('\ufffdA') },
  { name: 'highest pair', json: '"\\udbff\\udfff"', want: S('\u{10ffff}') },
  { name: 'low then high', json: '"\\udc00\\ud800"', want: S('\ufffd\ufffd') },
  { name: 'every escape', json: '"\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000 \\u001f \\u007f"', want: S('" \\ / \b \f \n \r \t \u0000 \u001f \u007f') },
  { name: 'empty strings', json: '{"":""}', want: M(['', S('')]) },
  { name: 'empty containers', json: '[{},[],[[]],{"a":{}}]', want: A(M(), A(), A(A()), M(['a', M()])) },
  { name: 'literals', json: '[true,false,null]', want: A(B(true), B(false), NIL) },
  { name: 'whitespace everywhere', json: '{ \t"a"\n:\r[ 1 ,\n2 ] , "b" : { } , "c":\t"x" }', want: M(['a', A(I(1), I(2))], ['b', M()], ['c', S('x')]) },
  { name: 'str header boundaries', json: `[${[31, 32, 255, 256, 65535, 65536].map((n) => `"${'y'.repeat(n)}"`).join(',')}]`, want: A(...[31, 32, 255, 256, 65535, 65536].map((n) => S('y'.repeat(n)))) },
  // Escaped text is longer than what it decodes to: these cross a header size boundary on the way.
  { name: 'escaped str shrinks below 32', json: `"${'z'.repeat(30)}\\n"`, want: S('z'.repeat(30) + '\n') },
  { name: 'escaped str shrinks below 256', json: `"${'z'.repeat(250)}\\u00e9"`, want: S('z'.repeat(250) + 'é') },
  { name: 'escaped str shrinks below 65536', json: `"${'z'.repeat(65530)}\\u0041"`, want: S('z'.repeat(65530) + 'A') },
  { name: 'escaped str of 65536 bytes', json: `"${'\\u0041'.repeat(65536)}"`, want: S('A'.repeat(65536)) },
  { name: '16-member map / array', json: `{${Array.from({ length: 16 }, (_, i) => `"k${i}":[${big(16, '0')}]`).join(',')}}`, want: M(...Array.from({ length: 16 }, (_, i): [string, V] => [`k${i}`, A(...Array.from({ length: 16 }, () => I(0)))])) },
  { name: 'map32 / array32', json: `[{${Array.from({ length: 65536 }, (_, i) => `"${i}":${i % 3 ? 'null' : '{}'}`).join(',')}},[${big(65536, '1')}]]`, want: A({ t: 'map', v: Array.from({ length: 65536 }, (_, i): [V, V] => [S(`${i}`), i % 3 ? NIL : M()]) }, { t: 'arr', v: Array.from({ length: 65536 }, () => I(1)) }) },
  { name: 'array16 / map16 at their largest', json: `[[${big(65535, '0')}],{${Array.from({ length: 65535 }, (_, i) => `"${i}":0`).join(',')}}]`, want: A({ t: 'arr', v: Array.from({ length: 65535 }, () => I(0)) }, { t: 'map', v: Array.from({ length: 65535 }, (_, i): [V, V] => [S(`${i}`), I(0)]) }) },
  { name: 'nested map16 inside map16', json: `{${Array.from({ length: 17 }, (_, i) => `"o${i}":{${Array.from({ length: 18 }, (_, j) => `"i${j}":${j}`).join(',')}}`).join(',')}}`, want: M(...Array.from({ length: 17 }, (_, i): [string, V] => [`o${i}`, M(...Array.from({ length: 18 }, (_, j): [string, V] => [`i${j}`, I(j)]))])) },
];

test('hard shapes transcode exactly (key order, duplicates, int vs float, -0, unicode, escapes, headers)', () => {
  for (const { name, json, want } of HARD) {
    // Small shapes also twice in one body, with whitespace around (big ones once: they are slow to compare).
    const bodies = json.length < 10_000 ? [`[${json}]`, ` \n[\t${json} ,${json}\r\n] \n`] : [`[${json}]`];
    for (const body of bodies) {
      const { slices, writer } = readAll(body, { reserve: 3 });
      assert.ok(slices.length >= 1, name);
      for (const s of slices) {
        assert.equal(Buffer.from(body).subarray(s.start, s.end).toString(), json, `${name}: element range`);
        sameValue(decodeSlice(writer, s), want, `${name}: msgpack`);
      }
      assert.equal(writer.pos, slices.at(-1)!.mpEnd, `${name}: writer ends after the last element`);
    }
    // The reference transcoder (used for bulk inputs below) agrees with the hand-written value.
    sameValue(reference(json), want, `${name}: reference`);
  }
});

test('element kind and depth; every element gets its reserved bytes', () => {
  const body = '[ {} , [] , "s" , -1.5 , true , false , null , {"a":{"b":[]}} , [[[1]]] , 0 ]';
  const { slices, writer } = readAll(body, { reserve: 11 });
  assert.deepEqual(
    slices.map((s) => [s.kind, s.depth]),
    [['object', 1], ['array', 1], ['string', 0], ['number', 0], ['boolean', 0], ['boolean', 0], ['null', 0], ['object', 3], ['array', 3], ['number', 0]],
  );
  let pos = 0;
  for (const s of slices) {
    assert.equal(s.mpStart, pos + 11, 'reserve sits right before each element');
    assert.equal(s.tooDeep, false);
    pos = s.mpEnd;
  }
  assert.equal(writer.pos, pos);
  const none = new RecordReader(Buffer.from(body));
  const first = none.next()!;
  assert.equal(first.mpStart, -1, 'no writer: not transcoded');
  assert.equal(first.mpEnd, -1);
});

test('an empty array has no elements; whitespace around the array is fine', () => {
  for (const body of ['[]', ' \t\r\n[ \n ]\n ']) assert.deepEqual(readAll(body).slices, []);
});

test('routing fields: top-level strings only, exact names, last occurrence wins, escapes decoded', () => {
  const fields = (json: string) => {
    const [s] = readAll(`[${json}]`).slices;
    const noWriter = new RecordReader(Buffer.from(`[${json}]`)).next()!;
    assert.deepEqual([noWriter.workload, noWriter.creationTime, noWriter.id], [s!.workload, s!.creationTime, s!.id], 'same fields without a writer');
    return [s!.workload, s!.creationTime, s!.id];
  };
  assert.deepEqual(fields('{"Workload":"Exchange","CreationTime":"2024-05-01T10:00:00","Id":"a-b"}'), ['Exchange', '2024-05-01T10:00:00', 'a-b']);
  assert.deepEqual(fields('{"Id":"first","Id":"second"}'), [undefined, undefined, 'second']);
  assert.deepEqual(fields('{"Id":"first","Id":7}'), [undefined, undefined, undefined], 'a later non-string hides the earlier string, as JSON.parse');
  assert.deepEqual(fields('{"Id":7,"Id":"x"}'), [undefined, undefined, 'x']);
  assert.deepEqual(fields('{"Workload":null,"CreationTime":{"Id":"nested"},"Id":["x"]}'), [undefined, undefined, undefined]);
  assert.deepEqual(fields('{"Workload":true,"CreationTime":1.5,"Id":false}'), [undefined, undefined, undefined]);
  assert.deepEqual(fields('{"workload":"x","ID":"y","creationtime":"z","Id ":"w"}'), [undefined, undefined, undefined], 'names are case-sensitive and exact');
  assert.deepEqual(fields('{"a":{"Workload":"Nested","Id":"n"},"b":[{"Id":"m"}]}'), [undefined, undefined, undefined], 'nested members do not count');
  assert.deepEqual(fields('{"W\\u006frkload":"Share\\u0050oint","Id":"\\ud83d\\ude00\\ud800","CreationTime":"t\\"q"}'), ['SharePoint', 't"q', '😀\ufffd']);
  assert.deepEqual(fields('{ "Workload" : "AzureActiveDirectory" , "Id" : "" }'), ['AzureActiveDirectory', undefined, '']);
  assert.deepEqual(fields('["Workload","Exchange"]'), [undefined, undefined, undefined]);
});

test('nesting: depth 63 transcodes, depth 64 is tooDeep with maxDepth 63 and leaves nothing in the writer', () => {
  const nest = (d: number, open: string, close: string, inner: string) => open.repeat(d - 1) + inner + close.repeat(d - 1);
  const arr63 = nest(63, '[', ']', '[1]');
  const obj64 = nest(64, '{"a":', '}', '{"b":2}');
  const arr64 = nest(64, '[', ']', '[]');
  const body = `[${arr63},${obj64},{"Id":"after"},${arr64},7]`;
  const w = new ByteWriter(16);
  const r = new RecordReader(Buffer.from(body), { writer: w, reserve: 11, maxDepth: 63 });
  const a = r.next()!;
  assert.equal(a.depth, 63);
  assert.equal(a.tooDeep, false);
  assert.deepEqual(decodeSlice(w, a), reference(arr63));
  const before = w.pos;
  const o = r.next()!;
  assert.deepEqual([o.depth, o.tooDeep, o.mpStart, o.mpEnd, o.kind], [64, true, -1, -1, 'object']);
  assert.equal(w.pos, before, 'writer back where it was, reserve included');
  assert.equal(body.slice(o.start, o.end), obj64);
  const after = r.next()!;
  assert.equal(after.id, 'after');
  assert.equal(after.mpStart, before + 11);
  assert.deepEqual(decodeSlice(w, after), M(['Id', S('after')]));
  const a64 = r.next()!;
  assert.deepEqual([a64.depth, a64.tooDeep, a64.mpStart], [64, true, -1]);
  const seven = r.next()!;
  assert.deepEqual(decodeSlice(w, seven), I(7));
  assert.equal(r.next(), undefined);
  // Without maxDepth there is no limit (an explicit stack, so no JS recursion limit either).
  const deep = nest(100_000, '[', ']', '[]');
  const [d] = readAll(`[${deep}]`).slices;
  assert.deepEqual([d!.depth, d!.tooDeep], [100_000, false]);
  assert.throws(() => readAll(`[${'['.repeat(100_000)}]`), JsonBodyError);
});

// ---- invalid bodies ------------------------------------------------------------------------------

test('invalid bodies throw JsonBodyError at the offending byte, with a one-line message that never quotes the body', () => {
  const cases: [string, number, RegExp][] = [
    ['', 0, /expected '\['.*empty/],
    ['{"a":1}', 0, /expected '\['/],
    ['\ufeff[]', 0, /expected '\['/], // a BOM: JSON.parse refuses it too
    ['[', 1, /end of body, expected a value/],
    ['[1,]', 3, /expected a value/],
    ['[1 2]', 3, /expected ',' or '\]'/],
    ['[1]x', 3, /nothing but whitespace/],
    ['[] []', 3, /nothing but whitespace/],
    ['[01]', 2, /leading zero/],
    ['[-]', 2, /digit after '-'/],
    ['[-01]', 3, /leading zero/],
    ['[1.]', 3, /digit after '\.'/],
    ['[.5]', 1, /expected a value/],
    ['[1e]', 3, /exponent/],
    ['[1e+]', 4, /exponent/],
    ['[+1]', 1, /expected a value/],
    ['[NaN]', 1, /expected a value/],
    ['[Infinity]', 1, /expected a value/],
    ['[tru]', 1, /expected a value/],
    ['[nul]', 1, /expected a value/],
    ["['a']", 1, /expected a value/],
    ['[/*c*/1]', 1, /expected a value/],
    ['["a\u0001"]', 3, /control character/],
    ['["a\nb"]', 3, /control character/],
    ['["\\x"]', 2, /invalid escape/],
    ['["\\u12G4"]', 2, /\\u escape/],
    ['["\\u12"]', 2, /\\u escape/],
    ['["abc', 5, /end of body inside a string/],
    ['["a\\', 3, /end of body inside a string/],
    ['[{"a"}]', 5, /expected ':'/],
    ['[{"a":1,}]', 8, /expected a string key/],
    ['[{1:2}]', 2, /expected a string key/],
    ['[{"a":1 "b":2}]', 8, /expected ',' or '\}'/],
    ['[{"a":1]', 7, /expected ',' or '\}'/],
    ['[[1}]', 3, /expected ',' or '\]'/],
    ['[{"a":1', 7, /end of body, expected ',' or '\}'/],
    ['[1,2', 4, /end of body, expected ',' or '\]'/],
    ['[\u00a01]', 1, /expected a value/], // NBSP is not JSON whitespace
    ['[\f1]', 1, /expected a value/], // nor form feed
    ['[1\v]', 2, /expected ',' or '\]'/], // nor vertical tab
  ];
  for (const [body, offset, re] of cases) {
    const buf = Buffer.from(body);
    assert.equal(jsonParseAccepts(buf), false, `JSON.parse refuses ${JSON.stringify(body)}`);
    const w = new ByteWriter();
    let err: unknown;
    try {
      readAll(buf, {}, w);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof JsonBodyError, `${JSON.stringify(body)} throws JsonBodyError`);
    assert.equal(err.offset, offset, `${JSON.stringify(body)}: offset`);
    assert.match(err.message, re, JSON.stringify(body));
    assert.match(err.message, /^content blob body is not a valid JSON array: [^\n]* at byte \d+$/);
  }
});

test('an error mid-blob keeps the elements before it; the failed element leaves nothing in the writer; the error repeats', () => {
  const body = Buffer.from('[{"Id":"one"},{"Id":"two","x":[1,2,{"y":"personal@example.com"]}]');
  const w = new ByteWriter();
  const r = new RecordReader(body, { writer: w, reserve: 11 });
  const one = r.next()!;
  assert.equal(one.id, 'one');
  const end = w.pos;
  const bad = body.indexOf('"]}]') + 1; // the ']' that should have been '}'
  assert.throws(() => r.next(), (e: unknown) => e instanceof JsonBodyError && /expected ',' or '\}'/.test(e.message) && !e.message.includes('personal') && e.offset === bad);
  assert.equal(w.pos, end, 'writer rolled back to the end of the last good element');
  assert.deepEqual(decodeSlice(w, one), M(['Id', S('one')]));
  assert.throws(() => r.next(), JsonBodyError);
});

test('fuzz: mutated bodies are accepted iff JSON.parse accepts them, and accepted ones transcode like the reference', () => {
  const seeds = [
    '[{"Workload":"Exchange","Id":"6f1c","n":-12.5e-3,"a":[true,false,null,{},[]],"s":"x\\u00e9\\ud83d\\ude00\\n\\"q\\""}]',
    ' [ 1 , -0 , 0.5 , 1E+2 , 18446744073709551615 , "" , { "" : { "k" : [ "v" ] } } ] ',
    '[{"CreationTime":"2024-05-01T10:00:00","UserId":"alice@contoso.com","Parameters":[{"Name":"Identity","Value":"C:\\\\x"}]}]',
    '[[[[[]]]],{"a":{"b":{"c":{}}}},"\\/\\b\\f\\r\\t",123456789012345678,-9223372036854775809,1e400]',
    ...realisticRecords(3, 7).map((r) => `[${r}]`),
  ].map((s) => Buffer.from(s));
  const pool = Buffer.from('{}[],:"\\/ \t\n\r0123456789-+.eEtrufalsn\u0001\u001fxu\u007f');
  const rnd = prng(20240501);
  let accepted = 0;
  let rejected = 0;
  for (let k = 0; k < 4000; k++) {
    const seed = seeds[k % seeds.length]!;
    let m = Buffer.from(seed);
    for (let edits = 1 + Math.floor(rnd() * 2); edits > 0; edits--) {
      const at = Math.floor(rnd() * m.length);
      const op = rnd();
      const byte = rnd() < 0.9 ? pool[Math.floor(rnd() * pool.length)]! : Math.floor(rnd() * 256);
      if (op < 0.45) m[at] = byte;
      else if (op < 0.7) m = Buffer.concat([m.subarray(0, at), Buffer.from([byte]), m.subarray(at)]);
      else if (op < 0.9) m = Buffer.concat([m.subarray(0, at), m.subarray(at + 1)]);
      else m = m.subarray(0, at);
    }
    const body = ensureUtf8(m);
    const expectOk = jsonParseAccepts(body);
    const w = new ByteWriter(32);
    const r = new RecordReader(body, { writer: w, reserve: 2 });
    const got: RecordSlice[] = [];
    let error: unknown;
    try {
      for (let s = r.next(); s; s = r.next()) got.push(s);
    } catch (e) {
      error = e;
    }
    const what = `case ${k}: ${JSON.stringify(body.toString())}`;
    assert.equal(error === undefined, expectOk, `${what}: reader ${error ? `threw ${(error as Error).message}` : 'accepted'}, JSON.parse ${expectOk ? 'accepted' : 'refused'}`);
    if (error !== undefined) {
      assert.ok(error instanceof JsonBodyError, `${what}: ${String(error)}`);
      assert.ok(error.offset >= 0 && error.offset <= body.length, what);
      assert.ok(!error.message.includes('alice') && !error.message.includes('Exchange'), `${what}: message quotes the body`);
      rejected++;
    } else {
      const parsed = JSON.parse(body.toString()) as unknown[];
      assert.equal(got.length, parsed.length, what);
      accepted++;
    }
    // Every element returned (before an error too) is valid JSON text on its own and transcodes like the reference.
    got.forEach((s, i) => {
      const text = body.subarray(s.start, s.end).toString();
      const v = decodeSlice(w, s);
      assert.deepEqual(v, reference(text), `${what}: element ${i}`);
      assert.deepEqual(toJs(v), wellFormed(JSON.parse(text)), `${what}: element ${i} vs JSON.parse`);
    });
    assert.equal(w.pos, got.length ? got.at(-1)!.mpEnd : 0, `${what}: writer holds exactly the returned elements`);
  }
  assert.ok(accepted > 300 && rejected > 1500, `both outcomes exercised (${accepted} accepted, ${rejected} rejected)`);
});

// ---- realistic input ----------------------------------------------------------------------------

test('realistic records: exact byte ranges, routing fields as JSON.parse sees them, msgpack equal to the reference', () => {
  const recs = realisticRecords(200, 42);
  const body = Buffer.from(`[\n${recs.join(',\n')}\n]\n`);
  assert.ok(body.length / recs.length > 1000, 'records are ~1–2 KB');
  const { slices, writer } = readAll(body, { reserve: 11, maxDepth: 16 });
  assert.equal(slices.length, recs.length);
  slices.forEach((s, i) => {
    assert.equal(body.subarray(s.start, s.end).toString(), recs[i]);
    const obj = JSON.parse(recs[i]!) as Record<string, unknown>;
    assert.deepEqual([s.kind, s.workload, s.creationTime, s.id], ['object', obj.Workload, obj.CreationTime, obj.Id]);
    const v = decodeSlice(writer, s);
    assert.deepEqual(v, reference(recs[i]!));
    assert.deepEqual(toJs(v), obj);
  });
  // The msgpack is standard: a third-party decoder reads the same values.
  assert.deepEqual(msgpackDecode(writer.buf.subarray(slices[0]!.mpStart, slices[0]!.mpEnd)), JSON.parse(recs[0]!));
});

test('ensureUtf8: valid bodies are returned as they are; invalid sequences become U+FFFD like TextDecoder', () => {
  const ok = Buffer.from('[{"a":"é😀"}]');
  assert.equal(ensureUtf8(ok), ok, 'same buffer, no copy');
  const bad = Buffer.from([0x5b, 0x22, 0x61, 0xff, 0xc3, 0x22, 0xed, 0xa0, 0x80, 0x5d]);
  const fixed = ensureUtf8(bad);
  assert.equal(fixed.toString(), new TextDecoder().decode(bad));
  assert.equal(fixed.toString(), '["a\ufffd\ufffd"\ufffd\ufffd\ufffd]');
  const bom = Buffer.from([0xef, 0xbb, 0xbf, 0x5b, 0xff, 0x5d]);
  assert.deepEqual(ensureUtf8(bom), Buffer.from('\ufeff[\ufffd]'), 'a BOM is kept: only the encoding is repaired');
});

test('real-format records from ../shared/fixtures read back equal', (t) => {
  const repoRoot = path.resolve(import.meta.dirname, '../..');
  const file = path.join(path.resolve(repoRoot, '../shared/fixtures'), 'audit-records.ndjson');
  if (!existsSync(file)) {
    t.skip(`${file} not found (../shared is not beside the repository)`);
    return;
  }
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  assert.ok(lines.length > 50);
  for (const line of lines) {
    const { slices, writer } = readAll(`[${line}]`);
    assert.equal(slices.length, 1);
    const obj = JSON.parse(line) as Record<string, unknown>;
    const s = slices[0]!;
    assert.equal(s.end - s.start, Buffer.byteLength(line.trim()));
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    assert.deepEqual([s.workload, s.creationTime, s.id], [str(obj.Workload), str(obj.CreationTime), str(obj.Id)]);
    const v = decodeSlice(writer, s);
    assert.deepEqual(v, reference(line.trim()));
    assert.deepEqual(toJs(v), obj);
  }
  // All of them as one blob: ranges are the lines exactly.
  const body = Buffer.from(`[${lines.join(',\n')}]`);
  const { slices } = readAll(body);
  assert.deepEqual(
    slices.map((s) => body.subarray(s.start, s.end).toString()),
    lines.map((l) => l.trim()),
  );
});
