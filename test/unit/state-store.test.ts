import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { BlobRef } from '../../src/polling/checkpoint.ts';
import { CollectorError } from '../../src/errors.ts';
import { StateStore } from '../../src/state/state-store.ts';

const NOW = Date.UTC(2026, 10, 25, 12);
const TENANT = '11111111-2222-3333-4444-555555555555';
const blob = (id: string, created = NOW - 3600_000): BlobRef => ({
  contentType: 'Audit.Exchange',
  contentId: `20261125${id}$20261125${id}$audit_exchange$Audit_Exchange$emea0036`,
  contentUri: `https://manage.office.com/api/v1.0/t/activity/feed/audit/${id}`,
  contentCreated: new Date(created).toISOString(),
  contentExpiration: new Date(created + 7 * 86_400_000).toISOString(),
});

function withDir(fn: (dir: string) => Promise<void> | void) {
  return async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-state-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  'a missing state is empty; changes survive a reload through the journal, then through a snapshot',
  withDir(async (dir) => {
    const file = path.join(dir, 'sub', 'state.json');
    const a = new StateStore(file);
    assert.equal(a.load().size, 0);
    await a.compact();
    const cp = a.createFeed('t/Audit.Exchange', TENANT, NOW, 86_400_000);
    cp.delivered(blob('1'), NOW + 7 * 86_400_000, 5, 1);
    cp.park(blob('2'), 'HTTP 500', NOW + 60_000);
    cp.completeWindow(NOW);
    await a.close();
    const b = new StateStore(file);
    const f = b.load().get('t/Audit.Exchange')!;
    assert.equal(f.cursor, NOW);
    assert.equal(f.s.recordsDelivered, 5);
    assert.equal(f.s.deadLettered, 1);
    assert.ok(f.isKnown(blob('1').contentId));
    assert.equal(f.retry.get(blob('2').contentId)!.lastError, 'HTTP 500');
    await b.compact();
    await b.close();
    const c = new StateStore(file);
    const g = c.load().get('t/Audit.Exchange')!;
    assert.deepEqual(g.s, f.s);
    assert.ok(g.isKnown(blob('1').contentId) && g.isKnown(blob('2').contentId));
    assert.deepEqual(readdirSync(path.dirname(file)).sort(), ['state.json', 'state.json.journal']);
  }),
);

test(
  'a delivered blob costs one short journal line, not a rewrite of the state (50,000 done ids)',
  withDir(async (dir) => {
    const file = path.join(dir, 'state.json');
    const store = new StateStore(file);
    store.load();
    const cp = store.createFeed('t/Audit.Exchange', TENANT, NOW, 86_400_000);
    for (let i = 0; i < 50_000; i++) cp.delivered(blob(`big${i}`), NOW + 7 * 86_400_000, 1, 0);
    await store.compact();
    const snapshot = statSync(file).size;
    const journal = statSync(store.journalFile).size;
    cp.delivered(blob('one-more'), NOW + 7 * 86_400_000, 1, 0);
    await store.flush();
    const perBlob = statSync(store.journalFile).size - journal;
    assert.equal(statSync(file).size, snapshot, 'the snapshot is not rewritten');
    assert.ok(perBlob < 600, `one blob wrote ${perBlob} bytes`);
    assert.ok(snapshot < 50_000 * 40, `the snapshot is compact: ${snapshot} bytes for 50,000 ids`);
    await store.close();
  }),
);

test(
  'the journal is folded into a new snapshot once it outgrows it',
  withDir(async (dir) => {
    const file = path.join(dir, 'state.json');
    const store = new StateStore(file, { compactMinBytes: 2000 });
    store.load();
    await store.compact();
    const cp = store.createFeed('t/Audit.Exchange', TENANT, NOW, 86_400_000);
    for (let i = 0; i < 60; i++) {
      cp.delivered(blob(`c${i}`), NOW + 7 * 86_400_000, 1, 0);
      await store.flush();
    }
    assert.ok(statSync(store.journalFile).size < 4000, 'the journal was compacted');
    await store.close();
    assert.equal(new StateStore(file).load().get('t/Audit.Exchange')!.s.blobsDelivered, 60);
  }),
);

test(
  'a torn last journal line (crash mid-append) is ignored; a journal of an older generation too',
  withDir(async (dir) => {
    const file = path.join(dir, 'state.json');
    const a = new StateStore(file);
    a.load();
    await a.compact();
    const cp = a.createFeed('t/Audit.Exchange', TENANT, NOW, 86_400_000);
    cp.delivered(blob('1'), NOW + 7 * 86_400_000, 2, 0);
    await a.close();
    appendFileSync(a.journalFile, '{"k":"t/Audit.Exchange","d":"AAAAAAAAAAAAAAAA","x":29');
    const b = new StateStore(file);
    assert.equal(b.load().get('t/Audit.Exchange')!.s.recordsDelivered, 2);
    // A crash between writing the new snapshot and the new journal: the old journal's changes are in the snapshot.
    const journal = readFileSync(a.journalFile, 'utf8');
    await b.compact();
    await b.close();
    writeFileSync(b.journalFile, journal.replace(/"generation":\d+/, '"generation":1') + '{"k":"t/Audit.Exchange","s":' + JSON.stringify({ ...b.feeds.get('t/Audit.Exchange')!.s, recordsDelivered: 999 }) + '}\n');
    assert.equal(new StateStore(file).load().get('t/Audit.Exchange')!.s.recordsDelivered, 2);
  }),
);

test(
  'a corrupt state is refused, left untouched, and its content is never quoted',
  withDir((dir) => {
    const file = path.join(dir, 'state.json');
    const secretish = 'abc8Q~Zx9_secret-looking.value-0123456789';
    for (const text of [`${secretish} not json`, `{"version":2,"generation":1,"feeds":{"t/X":{"tenantId":"${secretish}","cursor":"soon"}}}`, '{"version":9,"feeds":{}}', '[]']) {
      writeFileSync(file, text);
      assert.throws(
        () => new StateStore(file).load(),
        (err: unknown) => {
          assert.ok(err instanceof CollectorError && err.code === 'STATE_CORRUPT', String(err));
          assert.ok(!err.message.includes(secretish), `the message quotes the file: ${err.message}`);
          assert.match(err.message, /left untouched; fix or move it away/);
          return true;
        },
      );
      assert.equal(readFileSync(file, 'utf8'), text);
    }
    writeFileSync(file, '{"version":2,"generation":1,"feeds":{}}');
    writeFileSync(`${file}.journal`, '{"journal":2,"generation":1}\nnot json\n{"k":"x"}\n');
    assert.throws(() => new StateStore(file).load(), /journal is not usable: line 2 is not valid JSON/);
  }),
);

test(
  'a version-1 state (one document) is read and carried forward',
  withDir((dir) => {
    const file = path.join(dir, 'state.json');
    const id = blob('v1').contentId;
    writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        feeds: { 't/Audit.Exchange': { cursor: NOW, done: { [id]: NOW - 3600_000 }, retry: [], blobsDelivered: 4, recordsDelivered: 40, lost: 1, lastError: 'x' } },
      }),
    );
    const f = new StateStore(file).load().get('t/Audit.Exchange')!;
    assert.equal(f.cursor, NOW);
    assert.equal(f.s.recordsDelivered, 40);
    assert.ok(f.isKnown(id));
    assert.equal(f.s.origin, NOW - 3600_000, 'sweeps never go before what version 1 still knew');
  }),
);

test(
  'a write that fails stops the store: flush rejects with STATE_IO and onError is told once',
  withDir(async (dir) => {
    const file = path.join(dir, 'state.json');
    const store = new StateStore(file);
    store.load();
    const errors: unknown[] = [];
    store.onError = (e) => errors.push(e);
    mkdirSync(`${file}.${process.pid}.tmp`); // the atomic write's temp file is a folder: EISDIR
    store.createFeed('t/Audit.Exchange', TENANT, NOW, 86_400_000);
    await assert.rejects(store.flush(), (e: unknown) => e instanceof CollectorError && e.code === 'STATE_IO');
    await assert.rejects(store.flush(), /cannot write state file/);
    assert.equal(errors.length, 1);
    assert.ok(store.failure);
  }),
);

test(
  'temp files a crash left behind are removed when the state is locked',
  withDir((dir) => {
    const file = path.join(dir, 'state.json');
    writeFileSync(`${file}.12345.tmp`, 'half a snapshot');
    writeFileSync(`${file}.journal.999.tmp`, 'half a journal');
    writeFileSync(path.join(dir, 'other.tmp'), 'not ours');
    const store = new StateStore(file);
    store.lock();
    try {
      assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), ['other.tmp']);
    } finally {
      store.unlock();
    }
  }),
);

test(
  'hostile state files are refused with one clear error, never a crash or a hang (review findings 6, 9)',
  withDir((dir) => {
    const file = path.join(dir, 'state.json');
    // A FIFO at the state path: reading it would block the process where no signal can stop it.
    execFileSync('mkfifo', [file]);
    assert.throws(() => new StateStore(file).load(), /state file .* is not a regular file/);
    rmSync(file);
    // A journal line whose feed state is null; a cursor no Date can hold.
    const feed = { tenantId: 't', origin: 0, cursor: 0, lastSweepAt: 0, baselined: true, blobsDelivered: 0, recordsDelivered: 0, deadLettered: 0, lost: 0, gaps: 0, lateBlobs: 0, maxLatenessSeconds: 0, retry: [], done: {} };
    writeFileSync(file, JSON.stringify({ version: 2, generation: 1, feeds: {} }));
    writeFileSync(`${file}.journal`, '{"journal":2,"generation":1}\n{"k":"t/Audit.Exchange","s":null}\n');
    assert.throws(() => new StateStore(file).load(), (e: unknown) => e instanceof CollectorError && e.code === 'STATE_CORRUPT' && /line 2 is not a feed's state/.test(e.message));
    rmSync(`${file}.journal`);
    for (const cursor of [1e300, -1e300, -1]) {
      writeFileSync(file, JSON.stringify({ version: 2, generation: 1, feeds: { 't/Audit.Exchange': { ...feed, cursor } } }));
      assert.throws(() => new StateStore(file).load(), /cursor is not a count or a time/);
    }
  }),
);
