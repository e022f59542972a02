import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { newFeedState } from '../../src/polling/checkpoint.ts';
import { StateStore, STATE_VERSION } from '../../src/state/state-store.ts';

function tmp() {
  return mkdtempSync(path.join(os.tmpdir(), 'm365-state-'));
}

test('missing file is an empty state; save then load round-trips; no temp file left', async () => {
  const dir = tmp();
  try {
    const store = new StateStore(path.join(dir, 'sub', 'state.json'));
    const s = store.load();
    assert.deepEqual(s, { version: STATE_VERSION, feeds: {} });
    s.feeds['t/Audit.Exchange'] = newFeedState(1_700_000_000_000, 3600_000);
    s.feeds['t/Audit.Exchange']!.done['x$y'] = 1;
    await store.save(s);
    assert.deepEqual(store.load(), s);
    assert.deepEqual(readdirSync(path.join(dir, 'sub')), ['state.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupt or foreign state file is refused with a clear error and left untouched', () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'state.json');
    for (const [content, expected] of [
      ['{"version":1,"feeds":', /not valid JSON/],
      ['[]', /top level is not an object/],
      ['{"version":9,"feeds":{}}', /version is 9/],
      ['{"version":1,"feeds":{"t/A":{"cursor":"x","done":{},"retry":[],"blobsDelivered":0,"recordsDelivered":0,"lost":0}}}', /feeds\["t\/A"\]\.cursor is not a number/],
      ['{"version":1,"feeds":{"t/A":{"cursor":1,"done":{},"retry":[{}],"blobsDelivered":0,"recordsDelivered":0,"lost":0}}}', /retry\[0\]\.contentType/],
    ] as const) {
      writeFileSync(file, content);
      assert.throws(() => new StateStore(file).load(), (e: Error & { code?: string }) => e.code === 'STATE_CORRUPT' && expected.test(e.message) && e.message.includes(file));
      assert.equal(readFileSync(file, 'utf8'), content, 'file untouched');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('one collector per state file: a live owner is refused, a stale lock is taken over', () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'state.json');
    // The parent process is alive and is not us: its pid in the lock means "in use".
    writeFileSync(`${file}.lock`, `${process.ppid}\n`);
    assert.throws(() => new StateStore(file).lock(), (e: Error & { code?: string }) => e.code === 'STATE_IO' && /in use by another m365-forward \(pid \d+\)/.test(e.message));
    // A pid that no longer exists: stale, taken over, and released again.
    writeFileSync(`${file}.lock`, '999999999\n');
    const store = new StateStore(file);
    store.lock();
    assert.equal(readFileSync(`${file}.lock`, 'utf8').trim(), String(process.pid));
    store.unlock();
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
