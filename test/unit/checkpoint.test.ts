import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FeedCheckpoint, planWindows, retentionFloor, type BlobRef, type JournalOp } from '../../src/polling/checkpoint.ts';
import { API_RETENTION_MS, MAX_WINDOW_MS } from '../../src/management-api/limits.ts';
import { parseApiTime } from '../../src/management-api/dates.ts';
import { blobExpiry } from '../../src/polling/checkpoint.ts';

const H = 3600_000;
const D = 24 * H;
const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const blob = (id: string, created: number): BlobRef => ({
  contentType: 'Audit.Exchange',
  contentId: id,
  contentUri: `https://x/${id}`,
  contentCreated: new Date(created).toISOString(),
  contentExpiration: new Date(created + 7 * D).toISOString(),
});
const exp = (b: BlobRef) => blobExpiry(b, parseApiTime);

function feed(lookback = 24 * H, now = NOW) {
  const ops: JournalOp[] = [];
  const cp = FeedCheckpoint.create('t/Audit.Exchange', '11111111-2222-3333-4444-555555555555', now, lookback, (op) => ops.push(op));
  return { cp, ops };
}

test('windows are contiguous, at most 24 h, floored to the second', () => {
  const w = planWindows(NOW - 50 * H + 1500, NOW);
  assert.equal(w[0]!.start, NOW - 50 * H + 1000);
  assert.equal(w.at(-1)!.end, NOW);
  for (const x of w) assert.ok(x.end - x.start <= MAX_WINDOW_MS && x.end > x.start);
  for (let i = 1; i < w.length; i++) assert.equal(w[i]!.start, w[i - 1]!.end);
  assert.equal(w.length, 3);
  assert.deepEqual(planWindows(NOW, NOW), []);
});

test('a new feed starts at the initial look-back; 7d is clamped inside the retention without a false gap', () => {
  const a = feed(24 * H).cp;
  assert.equal(a.cursor, NOW - 24 * H);
  const b = feed(7 * D).cp;
  assert.equal(b.cursor, retentionFloor(NOW));
  const fixed = b.correct(NOW);
  assert.equal(fixed.gap, undefined, 'initial_lookback: 7d is not a loss');
  assert.equal(b.s.gaps, 0);
  assert.equal(b.s.lastError, undefined);
});

test('poll windows start an overlap before the cursor, never before the origin or the retention floor', () => {
  const { cp } = feed(24 * H);
  cp.completeWindow(NOW - 10 * H);
  const w = cp.pollWindows(NOW, 2 * H, NOW);
  assert.equal(w[0]!.start, NOW - 12 * H);
  const { cp: fresh } = feed(24 * H);
  assert.equal(fresh.pollWindows(NOW, 2 * H, NOW)[0]!.start, NOW - 24 * H, 'not before the origin');
  const w2 = cp.pollWindows(NOW + 30 * D, 2 * H, NOW + 30 * D);
  assert.ok(w2[0]!.start >= NOW + 30 * D - API_RETENTION_MS, 'inside the 7-day limit');
});

test('a checkpoint older than the retention is clamped and reported as a gap with its range', () => {
  const { cp } = feed(24 * H);
  const later = NOW + 9 * D;
  const fixed = cp.correct(later);
  assert.ok(fixed.gap);
  assert.equal(fixed.gap!.from, NOW - 24 * H);
  assert.equal(fixed.gap!.to, retentionFloor(later));
  assert.equal(cp.cursor, retentionFloor(later));
  assert.equal(cp.s.gaps, 1);
  assert.match(cp.s.lastError!, /^gap 2026-11-24T12:00:00.000Z\.\./);
});

test('a cursor ahead of the API time (saved while the local clock was fast) is pulled back and a sweep is due', () => {
  const { cp } = feed(24 * H, NOW + 3 * D); // created with a clock 3 days fast
  cp.completeWindow(NOW + 3 * D);
  const fixed = cp.correct(NOW);
  assert.equal(fixed.pulledBackFrom, NOW + 3 * D);
  assert.equal(cp.cursor, NOW);
  assert.ok(cp.s.origin <= NOW);
  assert.ok(cp.sweepWindows(NOW, 2 * H, H) !== undefined, 'a sweep is due at once');
});

test('delivered blobs are known until their expiry, whatever the overlap; the cursor never goes back', () => {
  const { cp, ops } = feed(24 * H);
  const old = blob('old', NOW - 20 * H);
  cp.delivered(old, exp(old), 3, 1);
  assert.ok(cp.isKnown('old'));
  assert.equal(cp.s.recordsDelivered, 3);
  assert.equal(cp.s.deadLettered, 1);
  cp.completeWindow(NOW);
  cp.completeWindow(NOW - 5 * H);
  assert.equal(cp.cursor, NOW, 'never backwards');
  cp.prune(NOW + 6 * D);
  assert.ok(cp.isKnown('old'), 'kept until its contentExpiration, not pruned by the overlap');
  cp.prune(NOW + 8 * D);
  assert.ok(!cp.isKnown('old'), 'gone after it expired');
  assert.ok(ops.some((o) => 'd' in o) && ops.some((o) => 's' in o), 'changes are journaled');
});

test('sweeps: due after the interval, over [origin, cursor - overlap]; off with interval 0', () => {
  const { cp } = feed(48 * H);
  cp.completeWindow(NOW);
  assert.equal(cp.sweepWindows(NOW, 2 * H, H), undefined, 'not due right after creation');
  const later = NOW + 2 * H;
  const w = cp.sweepWindows(later, 2 * H, H)!;
  assert.equal(w[0]!.start, NOW - 48 * H);
  assert.equal(w.at(-1)!.end, NOW - 2 * H);
  cp.sweepDone(later);
  assert.equal(cp.sweepWindows(later + 10 * 60_000, 2 * H, H), undefined);
  assert.equal(cp.sweepWindows(later + 10 * D, 2 * H, 0), undefined, 'interval 0 = off');
});

test('retry queue: park, due, re-park, lost (a gap), never counted twice', () => {
  const { cp } = feed(24 * H);
  const b = blob('b1', NOW - H);
  cp.park(b, 'HTTP 500', NOW + 60_000);
  assert.equal(cp.dueRetries(NOW).length, 0);
  assert.equal(cp.dueRetries(NOW + 60_000).length, 1);
  assert.ok(cp.isKnown('b1'), 'a parked blob is not fetched again by the listing');
  const e = cp.park(b, 'HTTP 404', NOW + 120_000, { notFound: true });
  assert.equal(e.attempts, 2);
  assert.equal(e.notFound, 1);
  assert.equal(cp.retry.size, 1);
  const g = cp.lost(b, exp(b), NOW - H, 'expired');
  assert.equal(cp.retry.size, 0);
  assert.equal(cp.s.lost, 1);
  assert.equal(cp.s.gaps, 1);
  assert.equal(g.from, NOW - H);
  assert.ok(cp.isKnown('b1'), 'a lost blob is not counted again when re-listed');
});

test('an unusable listing item is counted lost once, however often it is listed', () => {
  const { cp } = feed(24 * H);
  assert.equal(cp.unusable('invalid:abc', 'item 3 has no contentUri', NOW), true);
  for (let i = 0; i < 120; i++) assert.equal(cp.unusable('invalid:abc', 'item 3 has no contentUri', NOW + i * 60_000), false);
  assert.equal(cp.s.lost, 1);
});

test('late blobs are counted with their lateness', () => {
  const { cp } = feed(24 * H);
  assert.equal(cp.isLate(NOW - 30 * H, NOW - 2 * H), true);
  assert.equal(cp.isLate(NOW - H, NOW - 2 * H), false);
  cp.late(NOW - 30 * H, NOW);
  cp.late(NOW - 6 * D, NOW);
  assert.equal(cp.s.lateBlobs, 2);
  assert.equal(cp.s.maxLatenessSeconds, 6 * 24 * 3600);
});

test('a clean poll clears the last error only when nothing waits in the retry queue', () => {
  const { cp } = feed(24 * H);
  cp.park(blob('x', NOW), 'boom', NOW);
  cp.clearError();
  assert.equal(cp.s.lastError, 'boom');
  cp.delivered(blob('x', NOW), NOW + 7 * D, 1, 0);
  cp.clearError();
  assert.equal(cp.s.lastError, undefined);
});
