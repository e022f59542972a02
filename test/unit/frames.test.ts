import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as protocol from '@fluent-org/logger/build/src/protocol.js';
import { EventTime } from '@fluent-org/logger';
import { chunkIds, encodeFrame, planFrames } from '../../src/sink/frames.ts';
import type { EncodedEntry } from '../../src/record/encode.ts';

/** An entry as the encoder makes it: [EventTime, {Id, Blob}] in msgpack. */
function entry(i: number, tag: string, size: number): EncodedEntry {
  const bytes = Buffer.from(protocol.packEntry(protocol.generateEntry(new EventTime(1_700_000_000 + i, 123_456_789), { Id: `${i}`, Blob: 'ü'.repeat(size) })));
  return { tag, bytes };
}

test('frames hold one tag each, never exceed the maximum once encoded, and decode as PackedForward with a str chunk', () => {
  const entries: EncodedEntry[] = [];
  for (let i = 0; i < 2000; i++) entries.push(entry(i, `cloud.office365.management.${i % 2 ? 'exchange' : 'onedrive'}`, (i * 37) % 1500));
  const next = chunkIds();
  for (const max of [4096, 65_536, 1_048_576]) {
    const plans = planFrames(entries, max);
    assert.equal(plans.reduce((n, f) => n + f.parts.length, 0), entries.length);
    const ids = new Set<unknown>();
    for (const p of plans) {
      const chunk = next();
      const frame = encodeFrame(p, chunk);
      const bytes = Buffer.concat(frame.chunks);
      assert.equal(bytes.length, frame.length);
      assert.ok(bytes.length <= max, `frame ${bytes.length} > ${max}`);
      const msg = protocol.decodeClientMessage(bytes) as protocol.PackedForwardMode;
      assert.ok(protocol.isPackedForwardMode(msg));
      const t = protocol.parseTransport(msg);
      assert.equal(t.tag, p.tag);
      assert.equal(t.chunk, chunk);
      assert.equal(t.entries.length, p.parts.length);
      for (const [time, rec] of t.entries) {
        assert.ok(time instanceof EventTime && time.nano === 123_456_789);
        ids.add((rec as { Id: string }).Id);
      }
      assert.equal((msg[2] as { size: number }).size, p.parts.length);
    }
    assert.equal(ids.size, entries.length);
  }
});

test('an entry larger than the frame budget travels alone', () => {
  const big = entry(1, 't', 3000);
  const plans = planFrames([entry(0, 't', 10), big, entry(2, 't', 10)], 4096);
  assert.deepEqual(plans.map((p) => p.parts.length), [1, 1, 1]);
  assert.ok(encodeFrame(plans[1]!, chunkIds()()).length > 4096 - 64 - 1);
  assert.equal(encodeFrame(plans[1]!, 'x').chunks[1], plans[1]!.parts[0], 'entries are not copied');
});

test('chunk ids are unique 128-bit base64 strings', () => {
  const next = chunkIds();
  const seen = new Set<string>();
  for (let i = 0; i < 10_000; i++) seen.add(next());
  assert.equal(seen.size, 10_000);
  for (const c of [...seen].slice(0, 3)) assert.equal(Buffer.from(c, 'base64').length, 16);
});

test('entries lying end to end in one buffer leave as one chunk; the frame bytes are the same', () => {
  const a = Buffer.concat([entry(1, 't', 10).bytes, entry(2, 't', 20).bytes, entry(3, 't', 30).bytes, entry(4, 't', 5).bytes]);
  const b = Buffer.from(entry(5, 't', 40).bytes);
  const [l1, l2, l3] = [entry(1, 't', 10).bytes.length, entry(2, 't', 20).bytes.length, entry(3, 't', 30).bytes.length];
  const parts = [a.subarray(0, l1), a.subarray(l1, l1 + l2), b, a.subarray(l1 + l2, l1 + l2 + l3), a.subarray(l1 + l2 + l3)];
  const plan = { tag: 't', parts, entryBytes: parts.reduce((n, p) => n + p.length, 0) };
  const f = encodeFrame(plan, 'AAAAAAAAAAAAAAAAAAAAAA==');
  // header, [1+2], [5], [3+4], options
  assert.equal(f.chunks.length, 5);
  const wire = Buffer.concat(f.chunks);
  assert.equal(wire.length, f.length);
  assert.deepEqual(wire.subarray(f.chunks[0]!.length, f.chunks[0]!.length + plan.entryBytes), Buffer.concat(parts));
  const decoded = protocol.decodeServerMessage(wire) as any;
  assert.equal(decoded[0], 't');
  assert.equal(protocol.decodeEntries(decoded[1]).length, 5);
  assert.equal(decoded[2].size, 5);
});
