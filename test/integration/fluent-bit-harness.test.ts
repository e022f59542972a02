/**
 * Proves test/helpers/fluent-bit.ts (the harness, not the product) against the real Fluent Bit:
 * PackedForward frames written by hand over a raw socket (TCP, unix socket, TLS, mutual TLS) with a
 * `chunk` option are acked, and the records reach the harness's receiver exactly: tag, seconds and
 * nanoseconds, 64-bit integers, floats, nested maps, key order, the msgpack bytes themselves.
 * Also the Lua filter path (plugin/fluent-bit/devo.lua, to_devo), restart() with filesystem
 * storage, stop() leaving nothing behind, and the receiver's exact decoder on its own.
 *
 * What Fluent Bit 5.1.1 does at its limits, measured here (each is asserted below, so a Fluent
 * Bit that changes it fails a test and tells us):
 * - Nesting. In PackedForward a record nesting at most 63 containers (the record map counting 1)
 *   arrives. A deeper one is ACKED and then silently dropped when it is the first record of a new
 *   input chunk (a tag with no open chunk: a new tag, or the first frame after a flush), and every
 *   record after it in the same frame is dropped with it (no log line at the default level). When it
 *   lands in a chunk that is already open (a record of the same tag arrived just before, in an
 *   earlier frame or earlier in the same frame) it went through unharmed in these runs: whether
 *   it is lost depends on timing, so a sender must never send one (the collector dead-letters them:
 *   src/record/encode.ts FLUENT_BIT_MAX_DEPTH). Depth 64, 65 and 80 behaved alike. The limit is
 *   msgpack-c's 64-level unpack stack, the payload's entry array taking one level: in Forward mode,
 *   where the whole frame is unpacked at once (frame, entries and entry arrays), a record deeper
 *   than 61 makes in_forward log `err=MSGPACK_UNPACK_NOMEM_ERROR` and close the connection without
 *   an ack (not silent; not asserted here, the collector sends PackedForward).
 * - Size. A record of exactly 6,000,000 bytes in its own frame, with buffer_max_size 6144000,
 *   arrives byte for byte. The boundary is the whole frame: a 6,144,000-byte frame is accepted, a
 *   6,144,001-byte one makes in_forward log `incoming data exceed limit (6144000 bytes)` and close
 *   the connection without an ack.
 * - Invalid UTF-8. in_forward → out_forward does not look inside str values: a lone surrogate as
 *   CESU bytes (ED A0 80, what a UTF-16 string with an unpaired surrogate becomes when encoded
 *   without checks), stray FF FE, a truncated sequence, a NUL, and an invalid key all arrive with
 *   the very same bytes. (devo.lua then copies bytes >= 0x80 as they are into its JSON text, so
 *   invalid UTF-8 would reach Devo unchanged: the collector makes strings valid UTF-8 before
 *   sending, src/record/json-records.ts ensureUtf8.)
 * - Ack timing: in_forward acks a PackedForward frame once it is in the input's buffer, before any
 *   output (including for the dropped deep records above), as forward-fluent-bit-devo.md §2.2 says.
 *
 * node --import tsx --test test/integration/fluent-bit-harness.test.ts
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, test } from 'node:test';
import tls from 'node:tls';
import { gzipSync } from 'node:zlib';
import { EventTime } from '@fluent-org/logger';
import * as protocol from '@fluent-org/logger/build/src/protocol.js';
import { fluentBitBinary, needFluentBit, startFluentBit, waitFor, type FluentBit, type FluentBitOptions } from '../helpers/fluent-bit.ts';
import { ExtValue, startForwardReceiver, type ReceivedEntry } from '../helpers/forward-receiver.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const devoLua = path.join(repoRoot, 'plugin', 'fluent-bit', 'devo.lua');

// ---------------------------------------------------------------------------------------------
// A small msgpack writer, so the tests control every byte Fluent Bit reads.

/** A float64 even when the value is integral (JS cannot tell 1.0 from 1). */
class F64 {
  constructor(readonly value: number) {}
}
/** A msgpack str holding these exact bytes (not necessarily valid UTF-8). */
class RawStr {
  constructor(readonly bytes: Uint8Array) {}
}
/** A msgpack int64 (0xd3) whatever the value, as a sender that always writes signed 64-bit does. */
class I64 {
  constructor(readonly value: bigint) {}
}
/** A map whose keys may be any value (RawStr keys, for instance), in this order. */
class MapOf {
  constructor(readonly entries: Array<[Mp, Mp]>) {}
}
/** Bytes that are already msgpack. */
class Encoded {
  constructor(readonly bytes: Buffer) {}
}
type Mp = null | boolean | number | bigint | string | Uint8Array | EventTime | F64 | RawStr | I64 | MapOf | Encoded | Mp[] | { [key: string]: Mp };

/** A length head: fix form below `fixLimit` (if any), else the 8/16/32-bit form. */
function head(n: number, fix: number | undefined, fixLimit: number, codes: [number | undefined, number, number]): Buffer {
  if (fix !== undefined && n < fixLimit) return Buffer.from([fix | n]);
  if (codes[0] !== undefined && n < 0x100) return Buffer.from([codes[0], n]);
  const b = Buffer.alloc(n < 0x10000 ? 3 : 5);
  b[0] = n < 0x10000 ? codes[1] : codes[2];
  if (n < 0x10000) b.writeUInt16BE(n, 1);
  else b.writeUInt32BE(n, 1);
  return b;
}

/** The smallest integer form, as msgpack-c (Fluent Bit's packer) writes it: unsigned forms for v >= 0. */
function int(v: bigint): Buffer {
  const b = Buffer.alloc(9);
  if (v >= 0n && v < 0x80n) return Buffer.from([Number(v)]);
  if (v < 0n && v >= -32n) return Buffer.from([Number(v) & 0xff]);
  if (v >= 0n) {
    if (v < 0x100n) return Buffer.from([0xcc, Number(v)]);
    if (v < 0x10000n) return (b[0] = 0xcd), b.writeUInt16BE(Number(v), 1), b.subarray(0, 3);
    if (v < 0x100000000n) return (b[0] = 0xce), b.writeUInt32BE(Number(v), 1), b.subarray(0, 5);
    return (b[0] = 0xcf), b.writeBigUInt64BE(v, 1), b;
  }
  if (v >= -0x80n) return Buffer.from([0xd0, Number(v) & 0xff]);
  if (v >= -0x8000n) return (b[0] = 0xd1), b.writeInt16BE(Number(v), 1), b.subarray(0, 3);
  if (v >= -0x80000000n) return (b[0] = 0xd2), b.writeInt32BE(Number(v), 1), b.subarray(0, 5);
  return (b[0] = 0xd3), b.writeBigInt64BE(v, 1), b;
}

function mp(v: Mp): Buffer {
  if (v === null) return Buffer.from([0xc0]);
  if (typeof v === 'boolean') return Buffer.from([v ? 0xc3 : 0xc2]);
  if (typeof v === 'bigint') return int(v);
  if (typeof v === 'number') return Number.isInteger(v) ? int(BigInt(v)) : mp(new F64(v));
  if (typeof v === 'string') return mp(new RawStr(Buffer.from(v, 'utf8')));
  if (v instanceof Encoded) return v.bytes;
  if (v instanceof F64) {
    const b = Buffer.alloc(9);
    b[0] = 0xcb;
    b.writeDoubleBE(v.value, 1);
    return b;
  }
  if (v instanceof I64) {
    const b = Buffer.alloc(9);
    b[0] = 0xd3;
    b.writeBigInt64BE(v.value, 1);
    return b;
  }
  if (v instanceof EventTime) {
    // fixext8, type 0: uint32 seconds, uint32 nanoseconds (forward-fluent-bit-devo.md §1).
    const b = Buffer.alloc(10);
    b[0] = 0xd7;
    b.writeUInt32BE(v.epoch, 2);
    b.writeUInt32BE(v.nano, 6);
    return b;
  }
  if (v instanceof RawStr) return Buffer.concat([head(v.bytes.length, 0xa0, 32, [0xd9, 0xda, 0xdb]), v.bytes]);
  if (v instanceof Uint8Array) return Buffer.concat([head(v.length, undefined, 0, [0xc4, 0xc5, 0xc6]), v]);
  if (Array.isArray(v)) return Buffer.concat([head(v.length, 0x90, 16, [undefined, 0xdc, 0xdd]), ...v.map(mp)]);
  const entries = v instanceof MapOf ? v.entries : Object.entries(v);
  return Buffer.concat([head(entries.length, 0x80, 16, [undefined, 0xde, 0xdf]), ...entries.flatMap(([k, x]) => [mp(k), mp(x)])]);
}

type Time = EventTime | number;

/** A PackedForward frame: [tag, bin(concatenated [time, record] entries), {chunk}]. */
function packedForward(tag: string, entries: Array<[Time, Mp]>, chunk: string): Buffer {
  const payload = Buffer.concat(entries.map(([t, r]) => mp([t, r])));
  return mp([tag, payload, { chunk }]);
}

/** A record map nesting `depth` containers, the record itself counting 1. */
function nested(depth: number): Mp {
  let v: Mp = { leaf: depth };
  for (let i = 1; i < depth; i++) v = { d: v };
  return v;
}

/** A record of exactly `bytes` bytes of msgpack: {pad: "xxx…"}. */
function recordOfSize(bytes: number): Buffer {
  for (let pad = bytes - 16; pad < bytes; pad++) {
    const b = mp({ pad: 'x'.repeat(pad) });
    if (b.length === bytes) return b;
  }
  throw new Error(`no {pad} record of exactly ${bytes} bytes`);
}

let chunkSeq = 0;
/** A fresh `chunk` value (base64, as the spec asks; 16 bytes like the collector's). */
const newChunk = () => Buffer.from(`chunk${String(process.pid % 1e5).padStart(5, '0')}${String(++chunkSeq).padStart(6, '0')}`).toString('base64');

type Where = { port: number; tls?: tls.ConnectionOptions } | { path: string };

/**
 * Writes the frames on one connection and collects acks until `expectAcks` came or the server
 * closed the connection (a refused frame, a failed TLS handshake). Returns the acks' chunk values.
 */
async function send(where: Where, frames: Buffer[], expectAcks = frames.length): Promise<string[]> {
  const socket: net.Socket =
    'path' in where
      ? net.connect(where.path)
      : where.tls
        ? tls.connect({ host: '127.0.0.1', port: where.port, ...where.tls })
        : net.connect(where.port, '127.0.0.1');
  const acks: string[] = [];
  socket.on('error', () => {});
  const connected = await new Promise<boolean>((resolve) => {
    socket.once(socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => resolve(true));
    socket.once('close', () => resolve(false));
  });
  if (connected) {
    for (const f of frames) socket.write(f);
    try {
      for await (const m of protocol.decodeServerStream(socket)) {
        if (protocol.isAck(m)) acks.push(m.ack);
        if (acks.length >= expectAcks) break;
      }
    } catch {
      // a reset: report the acks that came before it
    }
  }
  socket.destroy();
  return acks;
}

const started: FluentBit[] = [];
/** startFluentBit, stopped after all tests even when one fails. */
async function start(opts: FluentBitOptions = {}): Promise<FluentBit> {
  const fb = await startFluentBit(opts);
  started.push(fb);
  return fb;
}
after(async () => {
  for (const fb of started) await fb.stop();
});

const byTag = (fb: FluentBit, tag: string): ReceivedEntry[] => fb.receiver.entries.filter((e) => e.tag === tag);

/**
 * Waits until everything Fluent Bit accepted before now has been delivered: a marker frame with a
 * fresh tag, twice in a row. The second marker is sent only once the first arrived, so its chunk
 * is flushed at a later flush tick than any chunk that existed before: a record that was going to
 * arrive has arrived by then.
 */
async function drain(fb: FluentBit, where: Where): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const tag = `marker.${newChunk()}`;
    assert.equal((await send(where, [packedForward(tag, [[1, { marker: i }]], newChunk())])).length, 1, 'marker acked');
    await waitFor(() => byTag(fb, tag).length === 1, `marker ${tag}`, fb);
  }
}

const T = new EventTime(1_700_000_000, 123_456_789);

/** A record with what must survive exactly: 64-bit integers, floats, nesting, key order. */
const exactRecord = {
  zeta: 'the first key, not sorted',
  int64max: new I64(2n ** 63n - 1n),
  uint64max: 2n ** 64n - 1n,
  int64min: -(2n ** 63n),
  beyond2p53: 2n ** 53n + 1n,
  float: 0.1,
  floatOne: new F64(1),
  tiny: -2.5e-300,
  nested: { b: [1, { c: null, a: true }, []], a: { deep: 'é✓' }, empty: {} },
  str8: 'x'.repeat(40),
  str16: 'y'.repeat(300),
  bin: new Uint8Array([0, 1, 254, 255]),
  timestampExt: new Encoded(Buffer.from([0xd6, 0xff, 0x65, 0x53, 0xf1, 0x00])),
  alpha: -1,
};
/** exactRecord as the receiver decodes it: uint64/int64 forms are bigints. */
const exactDecoded = {
  zeta: 'the first key, not sorted',
  int64max: 2n ** 63n - 1n,
  uint64max: 2n ** 64n - 1n,
  int64min: -(2n ** 63n),
  beyond2p53: 2n ** 53n + 1n,
  float: 0.1,
  floatOne: 1,
  tiny: -2.5e-300,
  nested: { b: [1, { c: null, a: true }, []], a: { deep: 'é✓' }, empty: {} },
  str8: 'x'.repeat(40),
  str16: 'y'.repeat(300),
  bin: new Uint8Array([0, 1, 254, 255]),
  timestampExt: new ExtValue(-1, new Uint8Array([0x65, 0x53, 0xf1, 0x00])),
  alpha: -1,
};

// ---------------------------------------------------------------------------------------------
// The harness's pieces on their own.

test('fluentBitBinary: FLUENT_BIT must name an executable file, else it throws', () => {
  const saved = process.env.FLUENT_BIT;
  try {
    process.env.FLUENT_BIT = path.join(repoRoot, 'no-such-fluent-bit');
    assert.throws(() => fluentBitBinary(), /^Error: FLUENT_BIT=.*no-such-fluent-bit is not an executable file: point it at a fluent-bit binary, or unset it$/);
    process.env.FLUENT_BIT = devoLua; // exists, not executable
    assert.throws(() => fluentBitBinary(), /is not an executable file/);
    process.env.FLUENT_BIT = process.execPath; // any executable will do for the lookup
    assert.equal(fluentBitBinary(), process.execPath);
  } finally {
    if (saved === undefined) delete process.env.FLUENT_BIT;
    else process.env.FLUENT_BIT = saved;
  }
});

test('receiver exactIntegers: every Forward mode, bigints, raw record bytes, frames arriving in pieces', async () => {
  const rx = await startForwardReceiver({ exactIntegers: true, bufferMaxSize: 4096 });
  try {
    const raw = mp(exactRecord);
    const entry = (t: Time) => mp([t, new Encoded(raw)]);
    const frames = [
      mp(['m.message', T, new Encoded(raw), { chunk: 'c1' }]),
      mp(['m.forward', [[T, new Encoded(raw)], [5, { n: 1 }]], { chunk: 'c2' }]),
      mp(['m.packed', Buffer.concat([entry(T), entry(7)]), { chunk: 'c3' }]),
      mp(['m.packed.str', new RawStr(entry(T)), { chunk: 'c4' }]),
      mp(['m.gzip', gzipSync(Buffer.concat([entry(T), entry(T)])), { chunk: 'c5', compressed: 'gzip' }]),
      // Fluent Bit's internal form [[time, metadata], record] is read as well.
      mp(['m.meta', [[[T, {}], new Encoded(raw)]]]),
    ];
    const all = Buffer.concat(frames);
    // Byte by byte for the first frames, then the rest at once: where reads split must not matter.
    const socket = net.connect(rx.port, '127.0.0.1');
    const acks: string[] = [];
    const reading = (async () => {
      for await (const m of protocol.decodeServerStream(socket)) if (protocol.isAck(m)) acks.push(m.ack);
    })().catch(() => {});
    await new Promise((r) => socket.once('connect', r));
    const split = frames[0].length + frames[1].length;
    for (let i = 0; i < split; i++) socket.write(all.subarray(i, i + 1));
    socket.write(all.subarray(split));
    await waitFor(() => rx.frames === frames.length && acks.length === 5, 'all frames and acks');
    assert.deepEqual(acks, ['c1', 'c2', 'c3', 'c4', 'c5']);
    assert.deepEqual(rx.chunks, ['c1', 'c2', 'c3', 'c4', 'c5']);
    assert.deepEqual(rx.frameSizes, frames.map((f) => f.length));
    assert.deepEqual(rx.entries.map((e) => [e.tag, e.timeMs, e.nanos]), [
      ['m.message', 1_700_000_000_123, 123_456_789],
      ['m.forward', 1_700_000_000_123, 123_456_789],
      ['m.forward', 5000, 0],
      ['m.packed', 1_700_000_000_123, 123_456_789],
      ['m.packed', 7000, 0],
      ['m.packed.str', 1_700_000_000_123, 123_456_789],
      ['m.gzip', 1_700_000_000_123, 123_456_789],
      ['m.gzip', 1_700_000_000_123, 123_456_789],
      ['m.meta', 1_700_000_000_123, 123_456_789],
    ]);
    for (const e of rx.entries.filter((x) => x.record.n === undefined)) {
      assert.deepEqual(e.record, exactDecoded, e.tag);
      assert.deepEqual(Object.keys(e.record), Object.keys(exactRecord), e.tag);
      assert.deepEqual(Buffer.from(e.rawRecord!), raw, e.tag);
    }
    // The default decoder is untouched: no rawRecord, numbers stay numbers.
    const plain = await startForwardReceiver();
    try {
      assert.deepEqual(await send({ port: plain.port }, [mp(['p', [[T, { big: 2n ** 40n }]], { chunk: 'p1' }])]), ['p1']);
      assert.deepEqual(plain.entries.map((e) => [e.record, e.rawRecord]), [[{ big: 2 ** 40 }, undefined]]);
    } finally {
      await plain.close();
    }
    // Above bufferMaxSize: the connection closes without an ack, as in Fluent Bit.
    const before = rx.frames;
    assert.deepEqual(await send({ port: rx.port }, [mp(['big', [[T, { pad: 'x'.repeat(5000) }]], { chunk: 'c6' }])]), []);
    assert.equal(rx.frames, before);
    socket.destroy();
    await reading;
  } finally {
    await rx.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Through the real Fluent Bit.

test('TCP: PackedForward frames with chunk are acked and reach the receiver exactly', async (t) => {
  if (!needFluentBit(t)) return;
  const fb = await start();
  assert.match(fb.config, /Flush\s+0\.2\n/);
  const raw = mp(exactRecord);
  const c1 = newChunk();
  const c2 = newChunk();
  const acks = await send({ port: fb.port! }, [
    packedForward('harness.tcp.a', [[T, new Encoded(raw)], [new EventTime(4_294_967_295, 999_999_999), { n: 2 }], [1_700_000_002, { n: 3 }]], c1),
    packedForward('harness.tcp.b', [[new EventTime(0, 1), { n: 4 }]], c2),
  ]);
  assert.deepEqual(acks, [c1, c2]);
  await waitFor(() => fb.receiver.entries.length >= 4, '4 records', fb);
  const a = byTag(fb, 'harness.tcp.a');
  assert.deepEqual(a.map((e) => [e.timeMs, e.nanos]), [
    [1_700_000_000_123, 123_456_789],
    [4_294_967_295_999, 999_999_999],
    // An integer time leaves Fluent Bit as an EventTime with 0 ns.
    [1_700_000_002_000, 0],
  ]);
  assert.deepEqual(a[0].record, exactDecoded);
  assert.deepEqual(Object.keys(a[0].record), Object.keys(exactRecord));
  // Fluent Bit stores and forwards the record's bytes as they came (0xd3 for 2^63-1 included).
  assert.deepEqual(Buffer.from(a[0].rawRecord!), raw);
  assert.deepEqual(a.slice(1).map((e) => e.record), [{ n: 2 }, { n: 3 }]);
  assert.deepEqual(byTag(fb, 'harness.tcp.b').map((e) => [e.timeMs, e.nanos, e.record]), [[0, 1, { n: 4 }]]);
  // out_forward asked for acks (Require_ack_response) and our receiver gave them.
  assert.ok(fb.receiver.chunks.length >= 1, 'out_forward sent chunk options');
});

test('unix socket: acked and delivered; stop() leaves no process, socket or temp folder', async (t) => {
  if (!needFluentBit(t)) return;
  const fb = await startFluentBit({ listen: 'unix' });
  const pid = fb.pid();
  try {
    assert.equal(fb.port, undefined);
    assert.ok(fb.unixPath && existsSync(fb.unixPath), 'the socket exists');
    const chunk = newChunk();
    assert.deepEqual(await send({ path: fb.unixPath }, [packedForward('harness.unix', [[T, new Encoded(mp(exactRecord))]], chunk)]), [chunk]);
    await waitFor(() => byTag(fb, 'harness.unix').length === 1, 'the record', fb);
    assert.deepEqual(Buffer.from(byTag(fb, 'harness.unix')[0].rawRecord!), mp(exactRecord));
  } finally {
    await fb.stop();
  }
  assert.ok(pid !== undefined);
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'Fluent Bit is gone');
  assert.equal(existsSync(fb.dir), false, 'temp folder removed');
  assert.equal(fb.pid(), undefined);
  await fb.stop(); // twice is fine
});

test('TLS: acked and delivered over TLS with the generated certificate', async (t) => {
  if (!needFluentBit(t)) return;
  const fb = await start({ tls: true });
  assert.ok(fb.tls?.caPem.includes('BEGIN CERTIFICATE'));
  const chunk = newChunk();
  assert.deepEqual(await send({ port: fb.port!, tls: { ca: fb.tls!.caPem } }, [packedForward('harness.tls', [[T, { via: 'tls' }]], chunk)]), [chunk]);
  await waitFor(() => byTag(fb, 'harness.tls').length === 1, 'the record', fb);
  assert.deepEqual(byTag(fb, 'harness.tls')[0].record, { via: 'tls' });
  // Plain TCP to a TLS input gets nothing.
  assert.deepEqual(await send({ port: fb.port! }, [packedForward('harness.tls.plain', [[T, { via: 'plain' }]], newChunk())]), []);
});

test('mutual TLS: a client without the certificate is refused, one with it is acked', async (t) => {
  if (!needFluentBit(t)) return;
  const fb = await start({ tls: { verifyClientCert: true } });
  assert.ok(fb.tls?.clientCertPem && fb.tls.clientKeyPem);
  const tag = 'harness.mtls';
  assert.deepEqual(await send({ port: fb.port!, tls: { ca: fb.tls.caPem } }, [packedForward(tag, [[T, { client: 'anonymous' }]], newChunk())]), []);
  const chunk = newChunk();
  const withCert = { ca: fb.tls.caPem, cert: fb.tls.clientCertPem, key: fb.tls.clientKeyPem };
  assert.deepEqual(await send({ port: fb.port!, tls: withCert }, [packedForward(tag, [[T, { client: 'certified' }]], chunk)]), [chunk]);
  await drain(fb, { port: fb.port!, tls: withCert });
  assert.deepEqual(byTag(fb, tag).map((e) => e.record), [{ client: 'certified' }]);
});

test('Lua filter: devo.lua to_devo turns a record into {devo_tag, message}, time kept to the nanosecond', async (t) => {
  if (!needFluentBit(t)) return;
  const fb = await start({ lua: { script: devoLua, call: 'to_devo', match: 'cloud.office365.management.*' } });
  assert.match(fb.config, /enable_flb_null\s+on/);
  const tag = 'cloud.office365.management.exchange';
  const record = { Id: 'a1', Operation: 'MailItemsAccessed', Count: 3, Ratio: 0.5, Nothing: null, List: [1, 'two', {}], Empty: [] };
  const chunks = [newChunk(), newChunk()];
  assert.deepEqual(await send({ port: fb.port! }, [packedForward(tag, [[T, record]], chunks[0]), packedForward('other.tag', [[T, { untouched: true }]], chunks[1])]), chunks);
  await waitFor(() => byTag(fb, tag).length === 1 && byTag(fb, 'other.tag').length === 1, 'both records', fb);
  const e = byTag(fb, tag)[0];
  assert.deepEqual(Object.keys(e.record).sort(), ['devo_tag', 'message']);
  assert.equal(e.record.devo_tag, tag);
  assert.deepEqual(JSON.parse(e.record.message as string), record);
  assert.deepEqual([e.timeMs, e.nanos], [1_700_000_000_123, 123_456_789]);
  // Match: other tags pass through unchanged.
  assert.deepEqual(byTag(fb, 'other.tag')[0].record, { untouched: true });
});

test('restart(): same port and receiver; with filesystem storage a chunk Fluent Bit held survives a kill', async (t) => {
  if (!needFluentBit(t)) return;
  const fb = await start({ storage: 'filesystem', stopGraceMs: 2000 });
  assert.match(fb.config, /storage\.path\s+\S+\/storage\n/);
  const port = fb.port!;
  const firstPid = fb.pid();
  // The receiver stops acking: Fluent Bit keeps the chunk and retries it.
  fb.receiver.setAck('never');
  const held = newChunk();
  assert.deepEqual(await send({ port }, [packedForward('harness.held', [[T, { held: true }]], held)]), [held]);
  await waitFor(() => byTag(fb, 'harness.held').length >= 1, 'the unacked delivery attempt', fb);
  // With a chunk awaiting an ack, Fluent Bit 5.1.1 does not exit on SIGTERM (test/helpers/fluent-bit.ts,
  // "Shutdown"): restart() sends SIGKILL after stopGraceMs. Either way the chunk is on disk.
  await fb.restart();
  assert.notEqual(fb.pid(), firstPid);
  assert.equal(fb.port, port);
  const attempts = byTag(fb, 'harness.held').length;
  fb.receiver.setAck('always');
  // The new process finds the chunk in storage.path and delivers it again.
  await waitFor(() => byTag(fb, 'harness.held').length > attempts, 'the held record after the restart', fb);
  assert.deepEqual(byTag(fb, 'harness.held').at(-1)!.record, { held: true });
  // kill() ends it at once; restart() brings it back on the same port.
  await fb.kill('SIGKILL');
  assert.equal(fb.pid(), undefined);
  await fb.restart();
  const after2 = newChunk();
  assert.deepEqual(await send({ port }, [packedForward('harness.after', [[T, { after: 'restart' }]], after2)]), [after2]);
  await waitFor(() => byTag(fb, 'harness.after').length === 1, 'a record after the second restart', fb);
  assert.match(fb.logs(), /--- restart ---[\s\S]*--- restart ---/);
});

// ---------------------------------------------------------------------------------------------
// Fluent Bit's limits (see the header).

test('nesting: depth 63 arrives; depth 64 is acked and dropped, with the records after it in its frame', async (t) => {
  if (!needFluentBit(t)) return;
  const fb = await start();
  const where = { port: fb.port! };
  // Each on a tag of its own, so each record starts a new input chunk.
  const cases = [
    ['harness.depth63', [[T, nested(63)]]],
    ['harness.depth64', [[T, nested(64)]]],
    ['harness.depth65', [[T, nested(65)]]],
    ['harness.depth64.then.flat', [[T, nested(64)], [T, { flat: true }]]],
  ] as const;
  const chunks = cases.map(() => newChunk());
  const acks = await send(where, cases.map(([tag, entries], i) => packedForward(tag, entries as unknown as Array<[Time, Mp]>, chunks[i])));
  assert.deepEqual(acks, chunks, 'in_forward acks every frame, the dropped ones included');
  await waitFor(() => byTag(fb, 'harness.depth63').length === 1, 'the depth-63 record', fb);
  await drain(fb, where);
  assert.deepEqual(Buffer.from(byTag(fb, 'harness.depth63')[0].rawRecord!), mp(nested(63)));
  assert.deepEqual(byTag(fb, 'harness.depth64'), [], 'depth 64 reached the output: has Fluent Bit lifted its nesting limit? Then revisit FLUENT_BIT_MAX_DEPTH in src/record/encode.ts');
  assert.deepEqual(byTag(fb, 'harness.depth65'), []);
  assert.deepEqual(byTag(fb, 'harness.depth64.then.flat'), [], 'the flat record after the deep one is lost with it');
});

test('size: a 6,000,000-byte record arrives whole; a frame one byte over buffer_max_size is refused without an ack', async (t) => {
  if (!needFluentBit(t)) return;
  const fb = await start({ bufferMaxSize: 6144000 });
  const where = { port: fb.port! };
  const big = recordOfSize(6_000_000);
  const chunk = newChunk();
  assert.deepEqual(await send(where, [packedForward('harness.big', [[T, new Encoded(big)]], chunk)]), [chunk]);
  await waitFor(() => byTag(fb, 'harness.big').length === 1, 'the 6,000,000-byte record', fb);
  assert.ok(Buffer.from(byTag(fb, 'harness.big')[0].rawRecord!).equals(big), 'same bytes');
  // The limit is on the whole frame: exactly buffer_max_size passes, one byte more does not.
  const frameOf = (total: number, tag: string) => {
    let size = total - 100;
    for (let i = 0; i < 5; i++) {
      const f = packedForward(tag, [[T, new Encoded(recordOfSize(size))]], chunk);
      if (f.length === total) return f;
      size += total - f.length;
    }
    throw new Error(`no frame of exactly ${total} bytes`);
  };
  assert.deepEqual(await send(where, [frameOf(6_144_000, 'harness.max')]), [chunk]);
  assert.deepEqual(await send(where, [frameOf(6_144_001, 'harness.over')]), []);
  await waitFor(() => byTag(fb, 'harness.max').length === 1, 'the 6,144,000-byte frame', fb);
  await drain(fb, where);
  assert.deepEqual(byTag(fb, 'harness.over'), []);
  assert.match(fb.logs(), /incoming data exceed limit \(6144000 bytes\)/);
});

test('invalid UTF-8 and lone surrogates pass in_forward → out_forward byte for byte', async (t) => {
  if (!needFluentBit(t)) return;
  const fb = await start();
  const bytes = (...b: number[]) => new RawStr(Buffer.from(b));
  const record = new MapOf([
    ['loneSurrogate', bytes(0x61, 0xed, 0xa0, 0x80, 0x62)],
    ['strayBytes', bytes(0xff, 0xfe)],
    ['truncated', bytes(0xe2, 0x82)],
    ['nul', bytes(0x61, 0x00, 0x62)],
    [bytes(0xc3, 0x28), 'invalid key'],
  ]);
  const chunk = newChunk();
  assert.deepEqual(await send({ port: fb.port! }, [packedForward('harness.utf8', [[T, record]], chunk)]), [chunk]);
  await waitFor(() => byTag(fb, 'harness.utf8').length === 1, 'the record', fb);
  const e = byTag(fb, 'harness.utf8')[0];
  assert.deepEqual(Buffer.from(e.rawRecord!), mp(record));
  // Decoded leniently (U+FFFD per bad sequence); the bytes above are the truth.
  assert.equal(e.record.nul, 'a\u0000b');
  assert.match(String(e.record.loneSurrogate), /^a\uFFFD+b$/);
});
