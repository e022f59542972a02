import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FeedPoller } from '../../src/polling/feed-poller.ts';
import {
  eraseFrame,
  feedProgress,
  formatCount,
  formatLag,
  RateMeter,
  redrawFrame,
  renderProgressLines,
  showProgress,
  type FeedProgress,
  type ProgressStream,
} from '../../src/support/progress.ts';

const ESC = '\u001b[';

describe('renderProgressLines', () => {
  test('one line per feed: blobs, records, records/s and lag, names padded so the columns line up', () => {
    const lines = renderProgressLines([
      { feed: 'contoso/Audit.Exchange', blobs: 12, records: 34567, recordsPerSecond: 1234.4, lagMs: 3 * 3600_000 + 12 * 60_000 },
      { feed: 'contoso/DLP.All', blobs: 0, records: 0 },
    ]);
    assert.deepEqual(lines, [
      'contoso/Audit.Exchange  12 blobs  34,567 records  1,234 records/s  lag 3h12m',
      'contoso/DLP.All         0 blobs  0 records  - records/s  lag -',
    ]);
  });

  test('lines are cut below the terminal width, so none wraps (a wrapped line breaks the next redraw)', () => {
    const [line] = renderProgressLines([{ feed: 'a-very-long-tenant-name/Audit.AzureActiveDirectory', blobs: 1, records: 2, lagMs: 0 }], 40);
    assert.equal(line!.length, 39);
    const [whole] = renderProgressLines([{ feed: 't/DLP.All', blobs: 1, records: 2, lagMs: 0 }], 200);
    assert.equal(whole, 't/DLP.All  1 blobs  2 records  - records/s  lag 0s');
    const [unknownWidth] = renderProgressLines([{ feed: 'a-very-long-tenant-name/Audit.AzureActiveDirectory', blobs: 1, records: 2 }], 0);
    assert.ok(unknownWidth!.length > 40, 'width 0 (unknown, as in a pty without a size) cuts nothing');
  });

  test('formatLag and formatCount', () => {
    assert.equal(formatLag(0), '0s');
    assert.equal(formatLag(-5000), '0s');
    assert.equal(formatLag(42_000), '42s');
    assert.equal(formatLag(12 * 60_000 + 5000), '12m05s');
    assert.equal(formatLag(3 * 3600_000 + 7 * 60_000), '3h07m');
    assert.equal(formatLag(2 * 86_400_000 + 3 * 3600_000), '2d03h');
    assert.equal(formatCount(1234567.4), '1,234,567');
  });
});

describe('frames', () => {
  test('the first frame is written where the cursor is; later ones move up over the previous one and clear it', () => {
    assert.equal(redrawFrame(['a', 'b'], 0), `${ESC}Ja\nb\n`);
    assert.equal(redrawFrame(['a', 'b', 'c'], 2), `${ESC}2F${ESC}Ja\nb\nc\n`);
    assert.equal(redrawFrame([], 3), `${ESC}3F${ESC}J`);
    assert.equal(eraseFrame(3), `${ESC}3F${ESC}J`);
    assert.equal(eraseFrame(0), '');
  });
});

describe('RateMeter', () => {
  test('no rate below a second of samples, then records a second over the window', () => {
    const m = new RateMeter(5000);
    assert.equal(m.sample(0, 0), undefined);
    assert.equal(m.sample(500, 100), undefined);
    assert.equal(m.sample(1000, 300), 300);
    assert.equal(m.sample(2000, 700), 350);
  });

  test('old samples leave the window: a feed that stopped shows its rate falling to 0', () => {
    const m = new RateMeter(5000);
    for (let t = 0; t <= 5000; t += 1000) m.sample(t, t); // 1,000 records a second
    assert.equal(m.sample(6000, 6000), 1000);
    for (let t = 7000; t <= 11000; t += 1000) m.sample(t, 6000);
    assert.equal(m.sample(12000, 6000), 0, 'nothing in the last 5 s');
  });
});

/** A stand-in for stderr that records what reaches it. */
function fakeStream(isTTY: boolean, columns?: number): ProgressStream & { out: string[] } {
  const out: string[] = [];
  return {
    isTTY,
    columns,
    out,
    write: ((chunk: string | Uint8Array) => {
      out.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return true;
    }) as ProgressStream['write'],
  };
}

describe('showProgress', () => {
  const feeds: FeedProgress[] = [
    { feed: 't/Audit.Exchange', blobs: 0, records: 0, lagMs: 60_000 },
    { feed: 't/DLP.All', blobs: 0, records: 0, lagMs: 0 },
  ];
  // An interval no test waits for: every frame below is drawn by start, a write or stop.
  const opts = { intervalMs: 3600_000, env: {} };

  test('not a terminal: draws nothing and leaves the stream alone', () => {
    const s = fakeStream(false);
    const write = s.write;
    const d = showProgress(() => feeds, { ...opts, stream: s });
    assert.equal(d.active, false);
    assert.equal(s.write, write, 'write is not wrapped');
    s.write('{"level":"info"}\n');
    d.stop();
    assert.deepEqual(s.out, ['{"level":"info"}\n']);
  });

  test('TERM=dumb: draws nothing', () => {
    const s = fakeStream(true);
    const d = showProgress(() => feeds, { ...opts, stream: s, env: { TERM: 'dumb' } });
    assert.equal(d.active, false);
    d.stop();
    assert.deepEqual(s.out, []);
  });

  test('a terminal: a frame at start, log lines above the frame, the final counts redrawn in place at stop', () => {
    const s = fakeStream(true, 120);
    const write = s.write;
    let t = 0;
    const d = showProgress(() => feeds.map((f) => ({ ...f })), { ...opts, stream: s, now: () => t });
    assert.equal(d.active, true);
    assert.notEqual(s.write, write, 'write is wrapped while the display runs');
    assert.deepEqual(s.out, [redrawFrame(renderProgressLines(feeds), 0)]);

    // A log line: the frame is erased, the line written, the frame drawn again below it.
    s.out.length = 0;
    t = 500;
    s.write('{"level":"info","msg":"x"}\n');
    assert.deepEqual(s.out, [eraseFrame(2), '{"level":"info","msg":"x"}\n', redrawFrame(renderProgressLines(feeds), 0)]);

    // A partial line is not followed by a frame (it would land in the middle of the line).
    s.out.length = 0;
    s.write(Buffer.from('partial'));
    assert.deepEqual(s.out, [eraseFrame(2), 'partial']);

    s.out.length = 0;
    feeds[0]!.blobs = 3;
    feeds[0]!.records = 2000;
    feeds[0]!.lagMs = 0;
    t = 2000;
    d.stop();
    assert.equal(s.write, write, 'stop puts the original write back');
    const last = renderProgressLines([
      { ...feeds[0]!, recordsPerSecond: 1000 },
      { ...feeds[1]!, recordsPerSecond: 0 },
    ]);
    assert.deepEqual(s.out, [redrawFrame(last, 0)]);
    assert.match(last[0]!, /t\/Audit.Exchange  3 blobs  2,000 records  1,000 records\/s  lag 0s/);
    d.stop();
    assert.equal(s.out.length, 1, 'stop twice draws once');
  });

  test('the frame follows the feeds as they appear, moving up over as many lines as it drew', () => {
    const s = fakeStream(true);
    const list: FeedProgress[] = [];
    const d = showProgress(() => list, { ...opts, stream: s, now: () => 0 });
    assert.deepEqual(s.out, [], 'no feed yet: nothing drawn');
    list.push({ feed: 'a/DLP.All', blobs: 0, records: 0 });
    s.write('one\n');
    list.push({ feed: 'a/Audit.General', blobs: 0, records: 0 });
    d.stop();
    assert.equal(s.out.at(-1), redrawFrame(renderProgressLines(list), 1));
  });
});

describe('feedProgress', () => {
  test('the lag is what lies between the checkpoint cursor and the end of the range (never negative)', () => {
    const f = {
      deps: { tenant: { name: 'contoso' }, contentType: 'Audit.Exchange', clock: { now: () => 10_000_000 } },
      checkpoint: { cursor: 4_000_000 },
    } as unknown as FeedPoller;
    assert.deepEqual(feedProgress(f, { blobs: 2, records: 5 }), { feed: 'contoso/Audit.Exchange', blobs: 2, records: 5, lagMs: 6_000_000 });
    assert.equal(feedProgress(f, { blobs: 0, records: 0 }, 5_000_000).lagMs, 1_000_000, 'a replay: to its --to');
    assert.equal(feedProgress(f, { blobs: 0, records: 0 }, 3_000_000).lagMs, 0);
  });
});
