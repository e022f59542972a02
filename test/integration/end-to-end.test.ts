import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { parseApiTime } from '../../src/management-api/dates.ts';
import { createRouter } from '../../src/sink/route.ts';
import { startSimulator, type SimBlob, type Simulator } from '../../src/simulator/index.ts';
import { StateStore } from '../../src/state/state-store.ts';
import { runOnce, simConfig } from '../helpers/collector-harness.ts';
import { startForwardReceiver, type ForwardReceiver, type ReceivedEntry } from '../helpers/forward-receiver.ts';

const H = 3600_000;
const router = createRouter('cloud.office365.management.{table}', {});
const STATUS = 'm365forward.status';

/** Every served record must have arrived exactly once, unchanged, with its tag and time. */
function assertExactlyOnce(blobs: readonly SimBlob[], got: ReceivedEntry[]) {
  const audit = got.filter((e) => e.tag !== STATUS);
  const served = blobs.flatMap((b) => b.records.map((record) => ({ b, record })));
  assert.equal(audit.length, served.length, `received ${audit.length} records, served ${served.length}`);
  const byId = new Map<string, ReceivedEntry>();
  for (const e of audit) {
    const id = String(e.record.Id);
    assert.ok(!byId.has(id), `record ${id} arrived twice`);
    byId.set(id, e);
  }
  for (const { b, record } of served) {
    const e = byId.get(String(record.Id));
    assert.ok(e, `record ${String(record.Id)} never arrived`);
    assert.deepEqual(e.record, record);
    assert.equal(e.tag, router.tagFor(record, b.contentType as never));
    const t = parseApiTime(record.CreationTime) ?? parseApiTime(b.contentCreated)!;
    assert.equal(e.timeMs, t);
  }
}

let sim: Simulator;
let rx: ForwardReceiver;
let offset = 0;
const anchor = Date.now() + 3 * H;
const clock = () => Date.now() + offset;

before(async () => {
  rx = await startForwardReceiver({ bufferMaxSize: 1024 * 1024 });
  // 12,000 records over 40 h (two 24 h windows), 20 blobs a page, a fifth of the blobs listed late.
  // Data is generated up to `anchor`, 3 h in the future of the first run.
  sim = await startSimulator({ seed: 7, records: 12_000, spanHours: 40, lateFraction: 0.2, pageSize: 20, anchor, now: clock });
});
after(async () => {
  await sim?.close();
  await rx?.close();
});

test('12,000 synthetic records: every one exactly once, late blobs caught, nothing re-sent, content added later sent once', async () => {
  const types = new Set(sim.blobs().map((b) => b.contentType));
  assert.equal(types.size, 5, 'all five content types served');
  assert.ok(sim.blobs().filter((b) => b.availableAt > parseApiTime(b.contentCreated)!).length > 10, 'some blobs are listed late');

  // Blobs created shortly before run 1 but listed only after it (the API's late listing).
  for (let i = 0; i < 3; i++) {
    const created = anchor - 3 * H - (10 + i * 7) * 60_000;
    sim.addRecords(
      [{ Id: `late-${i}`, CreationTime: new Date(created - 300_000).toISOString().slice(0, 19), Workload: 'SharePoint', Operation: 'FileAccessed', RecordType: 6 }],
      { contentType: 'Audit.SharePoint', contentCreated: created, availableAt: anchor - 3 * H + 15 * 60_000 },
    );
  }
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 48 });
  try {
    // Run 1, three hours before the data's end: only what is listed by then.
    offset = anchor - 3 * H - Date.now();
    const first = await runOnce(config, clock);
    assert.deepEqual(first.errors, []);
    const listedAtFirst = sim.blobs().filter((b) => b.availableAt <= anchor - 3 * H);
    assert.equal(first.blobs, listedAtFirst.length);
    // Late blobs created before run 1 but listed after it: the overlap must catch them in run 2.
    const caughtLate = sim.blobs().filter((b) => parseApiTime(b.contentCreated)! < anchor - 3 * H && b.availableAt > anchor - 3 * H);
    assert.ok(caughtLate.length > 0, 'the scenario has blobs created before run 1 and listed after it');

    // Run 2, after the data's end: the rest, including those late blobs.
    offset = anchor + 60_000 - Date.now();
    const second = await runOnce(config, clock);
    assert.deepEqual(second.errors, []);
    assertExactlyOnce(sim.blobs(), rx.entries);
    const pages = sim.stats().byRoute;
    assert.ok((pages.content ?? 0) > 10, `several listing pages: ${JSON.stringify(pages)}`);
    assert.equal(sim.stats().missingPublisherIdentifier, 0, 'PublisherIdentifier on every call');
    assert.equal(sim.stats().unknownRequests, 0);
    for (const s of rx.frameSizes) assert.ok(s <= config.output.forward.maxFrameBytes);

    // Run 3 right away: nothing new to send.
    const before3 = rx.entries.filter((e) => e.tag !== STATUS).length;
    const third = await runOnce(config, clock);
    assert.equal(third.records, 0);
    assert.equal(rx.entries.filter((e) => e.tag !== STATUS).length, before3);

    // Content added later is sent once.
    const extra = [
      { Id: 'added-later-1', CreationTime: new Date(clock() - 120_000).toISOString().slice(0, 19), Workload: 'Exchange', Operation: 'Send', RecordType: 2 },
      { Id: 'added-later-2', CreationTime: new Date(clock() - 60_000).toISOString().slice(0, 19), Workload: 'Exchange', Operation: 'Send', RecordType: 2 },
    ];
    sim.addRecords(extra, { contentType: 'Audit.Exchange', contentCreated: clock() - 30_000 });
    offset += 60_000;
    const fourth = await runOnce(config, clock);
    assert.equal(fourth.records, 2);
    const fifth = await runOnce(config, clock);
    assert.equal(fifth.records, 0);
    assertExactlyOnce(sim.blobs(), rx.entries);

    // Status records: one per feed per run, on their own tag.
    const status = rx.entries.filter((e) => e.tag === STATUS);
    assert.equal(status.length, 5 * 5);
    const last = status.at(-1)!.record;
    for (const k of ['tenant', 'contentType', 'cursor', 'lagSeconds', 'blobsDelivered', 'recordsDelivered', 'retryQueue', 'lost', 'lastError']) assert.ok(k in last, `status has ${k}`);
    // The state file holds all five feeds.
    const state = new StateStore(config.state.path).load();
    assert.equal(Object.keys(state.feeds).length, 5);
    assert.equal(Object.values(state.feeds).reduce((n, f) => n + f.recordsDelivered, 0), 12_005);
  } finally {
    cleanup();
  }
});
