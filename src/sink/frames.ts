import { randomBytes } from 'node:crypto';
import type { EncodedEntry } from '../record/encode.ts';
import { ByteWriter } from '../record/byte-writer.ts';
import { frameOverhead } from '../record/encode.ts';

/**
 * PackedForward frames (reference forward-fluent-bit-devo.md §1, §2.1):
 *   [tag, bin(entry entry …), {"size": n, "chunk": "<base64 id>"}]
 * One tag per frame, at most `maxFrameBytes` each: Fluent Bit's in_forward closes the connection,
 * without an ack, on a frame larger than its buffer_max_size (§0.3, §2.5). A single entry larger
 * than that budget travels alone (the encoder already refused the ones over max_record_bytes).
 * The chunk must be a msgpack str (a bin chunk is treated as an invalid option, §2.1).
 */
export interface FramePlan {
  tag: string;
  parts: Buffer[];
  entryBytes: number;
}

/** Groups entries by tag, in order, into frames of at most maxFrameBytes. */
export function planFrames(entries: readonly EncodedEntry[], maxFrameBytes: number): FramePlan[] {
  const open = new Map<string, FramePlan>();
  const out: FramePlan[] = [];
  for (const e of entries) {
    const budget = maxFrameBytes - frameOverhead(e.tag);
    let f = open.get(e.tag);
    if (f && f.entryBytes + e.bytes.length > budget) f = undefined;
    if (!f) {
      f = { tag: e.tag, parts: [], entryBytes: 0 };
      open.set(e.tag, f);
      out.push(f);
    }
    f.parts.push(e.bytes);
    f.entryBytes += e.bytes.length;
    // An entry that filled (or overflowed) the budget closes its frame.
    if (f.entryBytes >= budget) open.delete(e.tag);
  }
  return out;
}

/**
 * The frame as it goes on the wire, in pieces: its header, the entries as they are (views into the
 * encoder's batches, never copied), and its options. Written corked, they leave in one writev.
 */
export interface FrameBytes {
  chunks: Buffer[];
  length: number;
}

export function encodeFrame(plan: FramePlan, chunk: string): FrameBytes {
  const head = new ByteWriter(frameOverhead(plan.tag));
  head.arrayHeader(3);
  head.str(plan.tag);
  head.u8(0xc6); // bin32 for the entries: its size is known, and a fixed header is one less branch
  head.u32(plan.entryBytes);
  const tail = new ByteWriter(64);
  tail.mapHeader(2);
  tail.str('size');
  tail.int(plan.parts.length);
  tail.str('chunk');
  tail.str(chunk);
  const chunks = [head.buf.subarray(0, head.pos)];
  joinAdjacent(plan.parts, chunks);
  chunks.push(tail.buf.subarray(0, tail.pos));
  return { chunks, length: head.pos + plan.entryBytes + tail.pos };
}

/**
 * Appends `parts` to `out`, each run of views that lie end to end in one buffer as one view:
 * the records of a batch are contiguous, so a frame goes out as a few dozen iovecs rather than
 * one per record (the writev of ~700 small buffers per MiB cost more than its copy).
 */
function joinAdjacent(parts: readonly Buffer[], out: Buffer[]): void {
  let first: Buffer | undefined;
  let end = 0;
  let length = 0;
  const flush = () => {
    if (first) out.push(length === first.length ? first : Buffer.from(first.buffer, first.byteOffset, length));
  };
  for (const p of parts) {
    if (first && p.buffer === first.buffer && p.byteOffset === end) {
      length += p.length;
    } else {
      flush();
      first = p;
      length = p.length;
    }
    end = p.byteOffset + p.length;
  }
  flush();
}

/**
 * Chunk ids: 16 bytes, base64 (the spec's 128-bit id): 8 random bytes per process and an 8-byte
 * counter. Unique without a random draw per frame (that cost 3% of the collector's CPU).
 */
export function chunkIds(): () => string {
  const b = Buffer.alloc(16);
  randomBytes(8).copy(b, 0);
  let n = 0n;
  return () => {
    n++;
    b.writeBigUInt64BE(n, 8);
    return b.toString('base64');
  };
}
