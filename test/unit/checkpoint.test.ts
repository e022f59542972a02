import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  API_RETENTION_MS,
  MAX_WINDOW_MS,
  clampCursor,
  completeWindow,
  dueRetries,
  isDone,
  markDelivered,
  markLost,
  newFeedState,
  park,
  planWindows,
  type BlobRef,
} from '../../src/polling/checkpoint.ts';

const H = 3600_000;
const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const blob = (id: string, created: number): BlobRef => ({
  contentType: 'Audit.Exchange',
  contentId: id,
  contentUri: `https://x/${id}`,
  contentCreated: new Date(created).toISOString(),
  contentExpiration: new Date(created + 7 * 24 * H).toISOString(),
});

test('windows start an overlap before the cursor and are at most 24 h', () => {
  const w = planWindows(NOW - 50 * H, NOW, 2 * H, NOW);
  assert.equal(w[0]!.start, NOW - 52 * H);
  assert.equal(w.at(-1)!.end, NOW);
  for (const x of w) assert.ok(x.end - x.start <= MAX_WINDOW_MS && x.end > x.start);
  for (let i = 1; i < w.length; i++) assert.equal(w[i]!.start, w[i - 1]!.end, 'windows are contiguous');
  assert.equal(w.length, 3);
});

test('windows never start older than the API allows', () => {
  const w = planWindows(NOW - 9 * 24 * H, NOW, 2 * H, NOW);
  assert.ok(w[0]!.start > NOW - API_RETENTION_MS, 'start inside the 7-day limit');
});

test('nothing to list when the cursor is at the end', () => {
  assert.deepEqual(planWindows(NOW, NOW, 0, NOW), []);
});

test('new state starts at the initial look-back; an old cursor is clamped', () => {
  const s = newFeedState(NOW, 24 * H);
  assert.equal(s.cursor, NOW - 24 * H);
  assert.equal(clampCursor(s, NOW), 'resumed');
  s.cursor = NOW - 10 * 24 * H;
  assert.equal(clampCursor(s, NOW), 'clamped');
  assert.ok(s.cursor > NOW - API_RETENTION_MS);
});

test('delivered blobs are done; the cursor moves only forward; the done-set is pruned by arrival', () => {
  const s = newFeedState(NOW, 24 * H);
  markDelivered(s, blob('old', NOW - 20 * H), NOW - 20 * H, 3);
  markDelivered(s, blob('recent', NOW - H), NOW - H, 2);
  assert.ok(isDone(s, 'old') && isDone(s, 'recent'));
  assert.equal(s.recordsDelivered, 5);
  completeWindow(s, NOW, 2 * H);
  assert.equal(s.cursor, NOW);
  assert.ok(!isDone(s, 'old'), 'pruned: before cursor - overlap');
  assert.ok(isDone(s, 'recent'), 'kept: inside the overlap');
  completeWindow(s, NOW - 5 * H, 2 * H);
  assert.equal(s.cursor, NOW, 'never backwards');
});

test('retry queue: park, due, re-park, lost', () => {
  const s = newFeedState(NOW, 24 * H);
  const b = blob('b1', NOW - H);
  park(s, b, 'HTTP 500', NOW, 60_000);
  assert.equal(dueRetries(s, NOW).length, 0);
  assert.equal(dueRetries(s, NOW + 60_000).length, 1);
  assert.ok(isDone(s, 'b1'), 'a parked blob is not fetched again by the listing');
  park(s, b, 'HTTP 503', NOW, 120_000);
  assert.equal(s.retry.length, 1);
  assert.equal(s.retry[0]!.attempts, 2);
  markLost(s, 'b1', 'expired');
  assert.equal(s.retry.length, 0);
  assert.equal(s.lost, 1);
  assert.equal(s.lastError, 'expired');
});
