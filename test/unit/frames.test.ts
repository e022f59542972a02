import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildFrames, encodeFrame } from '../../src/sink/frames.ts';
import type { RoutedRecord } from '../../src/sink/types.ts';

test('frames hold one tag each and never exceed the maximum once encoded', () => {
  const recs: RoutedRecord[] = [];
  for (let i = 0; i < 2000; i++) {
    recs.push({ tag: `cloud.office365.management.${i % 2 ? 'exchange' : 'onedrive'}`, timeMs: 1_700_000_000_000 + i, record: { Id: `${i}`, Blob: 'ü'.repeat((i * 37) % 1500) } });
  }
  for (const max of [4096, 65_536, 1_048_576]) {
    const frames = buildFrames(recs, max);
    assert.equal(frames.reduce((n, f) => n + f.entries.length, 0), recs.length);
    for (const f of frames) {
      const size = encodeFrame(f, 'A'.repeat(24)).length;
      assert.ok(size <= max, `frame ${size} > ${max}`);
      assert.ok(f.entries.every((e) => e.record.Id !== undefined));
    }
  }
});

test('event time keeps milliseconds and sub-millisecond nanos', () => {
  const [f] = buildFrames([{ tag: 't', timeMs: 1_700_000_000_123, extraNanos: 456_789, record: {} }], 4096);
  assert.equal(f!.entries[0]!.time.epoch, 1_700_000_000);
  assert.equal(f!.entries[0]!.time.nano, 123_456_789);
});
