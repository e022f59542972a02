/**
 * State store cost with a week of done ids: `node --import tsx test/bench/state.bench.ts` (or
 * `npm run bench -- --only state`). Prints figures, asserts nothing (timings are not tests).
 * A delivered blob must cost a journal line, not a rewrite of megabytes.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StateStore } from '../../src/state/state-store.ts';

const line = (s: string) => process.stdout.write(s + '\n');

// State: a tenant listing 50,000 blobs a day per content type keeps 350,000 done ids per feed for the
// API's 7 days. A delivered blob must cost a journal line, not a rewrite of megabytes.
{
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-bench-state-'));
  // Interrupted (Ctrl-C, or the bench stopping it): leave no folder behind.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  }
  const file = path.join(dir, 'state.json');
  const now = Date.now();
  const ref = (i: number) => ({
    contentType: 'Audit.Exchange',
    contentId: `20261125${String(i).padStart(9, '0')}000000$20261125${String(i).padStart(9, '0')}000000$audit_exchange$Audit_Exchange$emea0036`,
    contentUri: `https://manage.office.com/api/v1.0/t/activity/feed/audit/${i}`,
    contentCreated: new Date(now - 3600_000).toISOString(),
    contentExpiration: new Date(now + 6 * 86_400_000).toISOString(),
  });
  const store = new StateStore(file);
  store.load();
  const feeds = ['Audit.AzureActiveDirectory', 'Audit.Exchange', 'Audit.SharePoint', 'Audit.General', 'DLP.All'].map((ct) => store.createFeed(`tenant/${ct}`, '11111111-2222-3333-4444-555555555555', now, 86_400_000));
  const perFeed = 350_000;
  let t0 = performance.now();
  for (const f of feeds) for (let i = 0; i < perFeed; i++) f.delivered(ref(i), now + 6 * 86_400_000, 20, 0);
  const fill = performance.now() - t0;
  t0 = performance.now();
  await store.compact();
  const compactMs = performance.now() - t0;
  const snapshotBytes = statSync(file).size;
  const journal0 = statSync(store.journalFile).size;
  const n = 200;
  t0 = performance.now();
  for (let i = 0; i < n; i++) {
    feeds[i % 5]!.delivered(ref(perFeed + i), now + 6 * 86_400_000, 20, 0);
    await store.flush();
  }
  const flushMs = (performance.now() - t0) / n;
  const perBlob = (statSync(store.journalFile).size - journal0) / n;
  // 20,000 parked blobs: scanning for due ones and re-parking one must stay cheap.
  for (let i = 0; i < 20_000; i++) feeds[0]!.park(ref(10_000_000 + i), 'HTTP 500', now + 60_000);
  t0 = performance.now();
  for (let i = 0; i < 100; i++) feeds[0]!.dueRetries(now + 120_000);
  const dueMs = (performance.now() - t0) / 100;
  await store.close();
  t0 = performance.now();
  new StateStore(file).load();
  const loadMs = performance.now() - t0;
  line(
    `state, 5 feeds x ${perFeed.toLocaleString('en')} done ids + 20,000 parked blobs: snapshot ${(snapshotBytes / 2 ** 20).toFixed(1)} MiB written in ${compactMs.toFixed(0)} ms (fill ${fill.toFixed(0)} ms); ` +
      `a delivered blob then costs ${perBlob.toFixed(0)} journal bytes and ${flushMs.toFixed(2)} ms per flush (write + fdatasync, one blob per flush); ` +
      `due-retry scan over 20,000 parked ${dueMs.toFixed(2)} ms; load (snapshot + journal) ${loadMs.toFixed(0)} ms`,
  );
  rmSync(dir, { recursive: true, force: true });
}
