import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RequestBudget } from '../../src/polling/request-budget.ts';

test('a minute holds at most the budget plus its burst, whoever asks', async () => {
  let now = 0;
  const b = new RequestBudget(1800, () => now);
  // The burst (a tenth of a minute) goes at once, then one request every 1/30 s.
  let immediate = 0;
  while (b.waitMs() === 0) {
    await b.take(new AbortController().signal);
    immediate++;
  }
  assert.equal(immediate, 180);
  assert.ok(Math.abs(b.waitMs() - 1000 / 30) < 1, `next in ${b.waitMs()} ms`);
  // Over a simulated minute, count what can be taken without waiting.
  let taken = immediate;
  for (let t = 0; t < 60_000; t += 10) {
    now = t;
    while (b.waitMs() === 0) {
      await b.take(new AbortController().signal);
      taken++;
    }
  }
  assert.ok(taken <= 1800 + 180 + 1, `${taken} requests in a minute`);
  assert.ok(taken >= 1800, `${taken} requests in a minute`);
});

test('throttling pauses every request of the tenant; a waiting request leaves at once on abort', async () => {
  let now = 1000;
  const b = new RequestBudget(600, () => now);
  b.pause(5000);
  assert.equal(b.waitMs(), 5000);
  now += 5000;
  assert.equal(b.waitMs(), 0);
  b.pause(60_000);
  const ac = new AbortController();
  const waiting = b.take(ac.signal);
  ac.abort(new Error('stop'));
  await assert.rejects(waiting, /stop/);
  assert.equal(b.stats.pauses, 2);
});
