import { EventTime } from '@fluent-org/logger';
import * as protocol from '@fluent-org/logger/build/src/protocol.js';
import { CollectorError } from '../errors.ts';
import type { RoutedRecord } from './types.ts';

/**
 * Splits records into PackedForward frames: one tag per frame, encoded size at most
 * `maxFrameBytes`. Fluent Bit's in_forward closes the connection, without an ack, on a frame
 * larger than its buffer_max_size (reference forward-fluent-bit-devo.md §0.3, §2.5), and the
 * logger library puts everything queued for a tag into one packet, so the cap is enforced here.
 */
export interface Frame {
  tag: string;
  entries: Array<{ time: EventTime; record: Record<string, unknown> }>;
  /** Bytes of the packed entries (the bin payload). */
  entryBytes: number;
}

/**
 * Bytes a PackedForward message adds around its entries: array header (1), tag (str header ≤ 5),
 * bin header (≤ 5), options map {size: uint32, chunk: 24-char base64} (≤ 45). 64 leaves margin.
 */
export function frameOverhead(tag: string): number {
  return Buffer.byteLength(tag) + 64;
}

export function eventTime(r: RoutedRecord): EventTime {
  const secs = Math.floor(r.timeMs / 1000);
  const nanos = (r.timeMs - secs * 1000) * 1_000_000 + (r.extraNanos ?? 0);
  return new EventTime(secs, nanos);
}

/** Encoded size of one entry exactly as the logger will pack it. */
export function entrySize(time: EventTime, record: Record<string, unknown>): number {
  return protocol.packEntry(protocol.generateEntry(time, record)).length;
}

export function buildFrames(records: RoutedRecord[], maxFrameBytes: number): Frame[] {
  const open = new Map<string, Frame>();
  const frames: Frame[] = [];
  for (const r of records) {
    const time = eventTime(r);
    const size = entrySize(time, r.record);
    const budget = maxFrameBytes - frameOverhead(r.tag);
    if (size > budget) {
      const id = typeof r.record.Id === 'string' ? ` Id ${r.record.Id}` : '';
      throw new CollectorError(
        'RECORD_TOO_LARGE',
        `record${id} encodes to ${size} bytes, more than fits a frame of output.forward.max_frame_bytes=${maxFrameBytes}; raise it (and Fluent Bit's buffer_max_size)`,
        { fatal: true },
      );
    }
    let f = open.get(r.tag);
    if (f && f.entryBytes + size > budget) {
      open.delete(r.tag);
      f = undefined;
    }
    if (!f) {
      f = { tag: r.tag, entries: [], entryBytes: 0 };
      open.set(r.tag, f);
      frames.push(f);
    }
    f.entries.push({ time, record: r.record });
    f.entryBytes += size;
  }
  return frames;
}

/** Encodes a frame exactly as the wire will carry it (used by tests to prove the cap holds). */
export function encodeFrame(f: Frame, chunk: string): Buffer {
  const packed = f.entries.map((e) => protocol.packEntry(protocol.generateEntry(e.time, e.record)));
  const msg = protocol.generatePackedForwardMode(f.tag, packed, f.entryBytes, chunk);
  return Buffer.from(protocol.encodeMessage(msg));
}
