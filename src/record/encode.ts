/**
 * Blob bytes → what the output sends, in one pass (json-records.ts reads the array, routes on the
 * three fields it needs and, for `record` format, transcodes straight into the output buffer).
 *
 * Three wire forms, one per output:
 * - forward + `record`: a Forward entry `[EventTime, map]`, the map carrying the record's JSON
 *   value (key order, exact integers; see json-records.ts for the few documented differences);
 * - forward + `devo`: `[EventTime, {devo_tag, message}]`, `message` the element's exact bytes;
 * - stdout: one JSON line `{"tag","time","record"}`, `record` the element's exact bytes (or the
 *   devo map with `message` as a JSON string).
 *
 * A record that cannot be sent (not an object, nesting deeper than Fluent Bit keeps, larger than a
 * frame may be) is set aside for the dead-letter file with its reason, and the rest of the blob
 * goes on (DESIGN guarantee 4). A time that cannot be an EventTime is not a reason: the record is
 * timed by its blob instead (counted in `timeFallbacks`).
 */
import { parseInstant, type Instant } from '../management-api/dates.ts';
import type { ContentType } from '../management-api/content-types.ts';
import type { Router } from '../sink/route.ts';
import { ByteWriter } from './byte-writer.ts';
import { RecordReader, ensureUtf8 } from './json-records.ts';

/**
 * Fluent Bit 5.1.1's in_forward ACKS records whose msgpack nests deeper than 63 containers (the
 * record map counting 1) and then drops them: they never reach any output (measured with the real
 * binary; test/integration/fluent-bit-harness.test.ts keeps checking it). Such records are
 * dead-lettered instead of silently vanishing.
 */
export const FLUENT_BIT_MAX_DEPTH = 63;

/** Bytes of `[0x92, fixext8 EventTime]` before each record in a Forward entry. */
const ENTRY_HEADER = 11;

/** The output's wire (Forward entries, or JSON lines for stdout) and the record format (output.record_format). */
export interface WireFormat {
  wire: 'forward' | 'json-line';
  record: 'record' | 'devo';
}

export interface EncodeOptions {
  format: WireFormat;
  router: Router;
  contentType: ContentType;
  /** Time for records whose CreationTime is missing or cannot be an EventTime (the blob's contentCreated). */
  fallback: Instant;
  /** Every record gets this tag instead of its route (the collector's own status records). */
  fixedTag?: string;
  /** Largest frame a single record may need (forward formats); larger ones are dead-lettered. */
  maxFrameBytesAlone?: number;
}

export interface EncodedEntry {
  tag: string;
  /** The entry's bytes (a view into the blob's output buffer). */
  bytes: Buffer;
}

export interface DeadLetter {
  tag: string;
  reason: string;
  id?: string;
  /** The element's exact bytes. */
  raw: Buffer;
}

export interface EncodedBlob {
  entries: EncodedEntry[];
  deadLetters: DeadLetter[];
  timeFallbacks: number;
}

/** Bytes a PackedForward frame adds around its entries (see sink/frames.ts: array, tag, bin header, options). */
export function frameOverhead(tag: string): number {
  return Buffer.byteLength(tag) + 64;
}

const EVENT_TIME_MAX_SEC = 0xffff_ffff;

/** The record's time as an EventTime: its CreationTime when that parses and fits uint32 seconds. */
export function recordInstant(creationTime: string | undefined, fallback: Instant): { t: Instant; fromRecord: boolean } {
  const t = parseInstant(creationTime);
  if (t === undefined || t.sec < 0 || t.sec > EVENT_TIME_MAX_SEC) return { t: fallback, fromRecord: false };
  return { t, fromRecord: true };
}

/** Encodes every record of one blob page at once. Throws JsonBodyError when the body is not a JSON array. */
export function encodeBlob(rawBody: Buffer, o: EncodeOptions): EncodedBlob {
  const all: EncodedBlob = { entries: [], deadLetters: [], timeFallbacks: 0 };
  for (const b of encodeBatches(rawBody, o, Infinity)) {
    all.entries.push(...b.entries);
    all.deadLetters.push(...b.deadLetters);
    all.timeFallbacks += b.timeFallbacks;
  }
  return all;
}

/**
 * Encodes one blob page as it is read, in batches: the records of one tag, up to `batchBytes`
 * (the output's frame size), are yielded as soon as they fill a batch, with the dead letters and
 * time fallbacks seen since the previous batch; the rest at the end. The caller hands each batch
 * to the output before reading on, so a 40 MiB blob never sits in memory encoded as a whole: only
 * its bytes, one record being encoded, and one open batch per tag. Throws JsonBodyError when the
 * body is not a JSON array (batches yielded before that stay valid).
 */
export function* encodeBatches(rawBody: Buffer, o: EncodeOptions, batchBytes: number): Generator<EncodedBlob> {
  // A UTF-8 byte-order mark is not JSON, but HTTP clients strip it silently (the previous
  // res.text() path did): tolerate it rather than park a blob over it.
  const body = ensureUtf8(rawBody[0] === 0xef && rawBody[1] === 0xbb && rawBody[2] === 0xbf ? rawBody.subarray(3) : rawBody);
  // One record at a time. Under 4 KiB a Buffer comes from Node's shared pool instead of an
  // allocation of its own per blob (7,000 blobs made 450 MB of garbage at 64 KiB each); a larger
  // record grows it by doubling.
  const out = new ByteWriter(4000);
  const transcode = o.format.wire === 'forward' && o.format.record === 'record';
  const reader = new RecordReader(body, transcode ? { writer: out, reserve: ENTRY_HEADER, maxDepth: FLUENT_BIT_MAX_DEPTH } : {});
  const open = new Map<string, { w: ByteWriter; ends: number[] }>();
  let deadLetters: DeadLetter[] = [];
  let timeFallbacks = 0;
  const take = (tag: string, b: { w: ByteWriter; ends: number[] }): EncodedBlob => {
    const entries = b.ends.map((end, i) => ({ tag, bytes: b.w.buf.subarray(i === 0 ? 0 : b.ends[i - 1], end) }));
    const batch = { entries, deadLetters, timeFallbacks };
    deadLetters = [];
    timeFallbacks = 0;
    return batch;
  };
  for (let r = reader.next(); r !== undefined; r = reader.next()) {
    const entryStart = transcode ? r.mpStart - ENTRY_HEADER : 0;
    const tag = o.fixedTag ?? o.router.tag(r.kind === 'object' ? r.workload : undefined, o.contentType);
    const dead = (reason: string) => deadLetters.push({ tag, reason, ...(r.id !== undefined ? { id: r.id } : {}), raw: body.subarray(r.start, r.end) });
    if (!transcode) out.reset();
    if (r.kind !== 'object') {
      dead(`the blob's element is ${r.kind === 'array' ? 'an array' : `a ${r.kind}`}, not a JSON object (an audit record)`);
      out.reset();
      continue;
    }
    if (r.tooDeep) {
      dead(`the record nests ${r.depth} levels deep; Fluent Bit drops records nested deeper than ${FLUENT_BIT_MAX_DEPTH} (it acknowledges them, then they never reach an output)`);
      out.reset();
      continue;
    }
    const { t, fromRecord } = recordInstant(r.creationTime, o.fallback);
    if (!fromRecord) timeFallbacks++;
    if (transcode) {
      out.eventTimeAt(entryStart + 1, t.sec, t.nsec);
      out.buf[entryStart] = 0x92;
    } else if (o.format.wire === 'forward') {
      out.ensure(ENTRY_HEADER + 32 + tag.length * 3 + (r.end - r.start) + 5);
      out.u8(0x92);
      out.eventTime(t.sec, t.nsec);
      out.mapHeader(2);
      out.str('devo_tag');
      out.str(tag);
      out.str('message');
      out.strBytes(body, r.start, r.end);
    } else if (o.format.record === 'record') {
      out.raw(Buffer.from(`{"tag":${JSON.stringify(tag)},"time":"${isoNanos(t)}","record":`));
      out.raw(body, r.start, r.end);
      out.raw(Buffer.from('}\n'));
    } else {
      const message = JSON.stringify(body.toString('utf8', r.start, r.end));
      out.raw(Buffer.from(`{"tag":${JSON.stringify(tag)},"time":"${isoNanos(t)}","record":{"devo_tag":${JSON.stringify(tag)},"message":${message}}}\n`));
    }
    const size = out.pos - entryStart;
    if (o.maxFrameBytesAlone !== undefined && size + frameOverhead(tag) > o.maxFrameBytesAlone) {
      dead(`the record encodes to ${size} bytes, more than a frame may carry (output.forward.max_record_bytes = ${o.maxFrameBytesAlone}); raise it together with Fluent Bit's buffer_max_size, then run \`m365-forward deadletter resend\``);
      out.reset();
      continue;
    }
    let b = open.get(tag);
    if (b && b.w.pos > 0 && b.w.pos + size > batchBytes) {
      yield take(tag, b);
      b = undefined;
    }
    if (!b) {
      // Room for a few records like this one, growing by doubling up to a batch: a tag with few
      // records in a big blob does not hold a buffer the size of the blob while its frame waits
      // for an ack (the views the output keeps pin the whole buffer).
      b = { w: new ByteWriter(Math.min(Math.max(batchBytes, size), Math.max(size * 4, 16 * 1024)) + 64), ends: [] };
      open.set(tag, b);
    }
    b.w.raw(out.buf, entryStart, out.pos);
    b.ends.push(b.w.pos);
    out.reset();
  }
  const rest = [...open];
  open.clear();
  if (rest.length === 0) {
    if (deadLetters.length || timeFallbacks) yield { entries: [], deadLetters, timeFallbacks };
    return;
  }
  for (const [tag, b] of rest) yield take(tag, b);
}

/** ISO-8601 UTC with the fraction to the nanosecond when there is one below the millisecond. */
export function isoNanos(t: Instant): string {
  const iso = new Date(t.sec * 1000).toISOString().slice(0, 19);
  if (t.nsec === 0) return `${iso}.000Z`;
  if (t.nsec % 1_000_000 === 0) return `${iso}.${String(t.nsec / 1_000_000).padStart(3, '0')}Z`;
  return `${iso}.${String(t.nsec).padStart(9, '0')}Z`;
}
