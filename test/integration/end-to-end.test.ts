import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseApiTime } from '../../src/management-api/dates.ts';
import { createRouter } from '../../src/sink/route.ts';
import { parseCorpus, startSimulator, type SimBlob, type Simulator } from '../../src/simulator/index.ts';
import { StateStore } from '../../src/state/state-store.ts';
import { runOnce, simConfig } from '../helpers/collector-harness.ts';
import { startForwardReceiver, type ForwardReceiver, type ReceivedEntry } from '../helpers/forward-receiver.ts';

const H = 3600_000;
const router = createRouter('cloud.office365.management.{table}', {});
const STATUS = 'm365forward.status';

/**
 * Every served record must have arrived exactly once, unchanged, with its tag and time. Compared
 * as multisets of (tag, time, JSON): a corpus may hold the same record twice (the API redelivers).
 */
function assertExactlyOnce(blobs: readonly SimBlob[], got: ReceivedEntry[]) {
  const audit = got.filter((e) => e.tag !== STATUS);
  const want = blobs
    .flatMap((b) =>
      b.records.map((record) => {
        const t = parseApiTime(record.CreationTime) ?? parseApiTime(b.contentCreated)!;
        return `${router.tagFor(record, b.contentType as never)} ${t} ${JSON.stringify(record)}`;
      }),
    )
    .sort();
  const have = audit.map((e) => `${e.tag} ${e.timeMs} ${JSON.stringify(e.record)}`).sort();
  assert.equal(have.length, want.length, `received ${have.length} records, served ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    if (have[i] !== want[i]) assert.fail(`first difference at ${i}:\n  got  ${have[i]!.slice(0, 300)}\n  want ${want[i]!.slice(0, 300)}`);
  }
}

let rx: ForwardReceiver;
before(async () => {
  rx = await startForwardReceiver({ bufferMaxSize: 1024 * 1024 });
});
after(async () => {
  await rx?.close();
});

/**
 * The whole path, twice over time: run 1 three hours before the data's end (only what is listed
 * by then), run 2 after it (the rest, including blobs created before run 1 but listed after it),
 * run 3 (nothing), then content added later (sent once). `makeSim` builds the simulator on the
 * shared clock; the data ends at `anchor`.
 */
async function scenario(makeSim: (anchor: number, now: () => number) => Promise<Simulator>) {
  rx.entries.length = 0;
  rx.frameSizes.length = 0;
  // A clock that stands still between the steps, so "listed by then" has one meaning.
  const anchor = Date.now() + 3 * H;
  let now = Date.now();
  const clock = () => now;
  const sim = await makeSim(anchor, clock);
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 48 });
  try {
    const served = () => sim.blobs().reduce((n, b) => n + b.records.length, 0);
    assert.ok(served() >= 10_000, `at least 10,000 records served (${served()})`);
    assert.equal(new Set(sim.blobs().map((b) => b.contentType)).size, 5, 'all five content types served');
    assert.ok(sim.blobs().filter((b) => b.availableAt > parseApiTime(b.contentCreated)!).length > 10, 'some blobs are listed late');
    const span = sim.blobs().map((b) => parseApiTime(b.contentCreated)!);
    assert.ok(Math.max(...span) - Math.min(...span) > 24 * H, 'more than one 24 h window');
    // Blobs created shortly before run 1 but listed only after it (the API's late listing).
    for (let i = 0; i < 3; i++) {
      const created = anchor - 3 * H - (10 + i * 7) * 60_000;
      sim.addRecords(
        [{ Id: `late-${i}`, CreationTime: new Date(created - 300_000).toISOString().slice(0, 19), Workload: 'SharePoint', Operation: 'FileAccessed', RecordType: 6 }],
        { contentType: 'Audit.SharePoint', contentCreated: created, availableAt: anchor - 3 * H + 15 * 60_000 },
      );
    }

    // Run 1, three hours before the data's end.
    now = anchor - 3 * H;
    const first = await runOnce(config, clock);
    assert.deepEqual(first.errors, []);
    assert.equal(first.blobs, sim.blobs().filter((b) => b.availableAt <= anchor - 3 * H).length);

    // Run 2, after the data's end: the rest, including the late blobs.
    now = anchor + 60_000;
    const second = await runOnce(config, clock);
    assert.deepEqual(second.errors, []);
    assertExactlyOnce(sim.blobs(), rx.entries);
    assert.ok((sim.stats().byRoute.content ?? 0) > 10, `several listing pages: ${JSON.stringify(sim.stats().byRoute)}`);
    assert.equal(sim.stats().missingPublisherIdentifier, 0, 'PublisherIdentifier on every call');
    assert.equal(sim.stats().unknownRequests, 0);
    for (const size of rx.frameSizes) assert.ok(size <= config.output.forward.maxFrameBytes);

    // Run 3 right away: nothing new to send.
    const third = await runOnce(config, clock);
    assert.equal(third.records, 0);

    // Content added later is sent once.
    const extra = [1, 2].map((i) => ({ Id: `added-later-${i}`, CreationTime: new Date(clock() - i * 60_000).toISOString().slice(0, 19), Workload: 'Exchange', Operation: 'Send', RecordType: 2 }));
    sim.addRecords(extra, { contentType: 'Audit.Exchange', contentCreated: clock() - 30_000 });
    now += 60_000;
    assert.equal((await runOnce(config, clock)).records, 2);
    assert.equal((await runOnce(config, clock)).records, 0);
    assertExactlyOnce(sim.blobs(), rx.entries);

    // Status records: one per feed per run, on their own tag.
    const status = rx.entries.filter((e) => e.tag === STATUS);
    assert.equal(status.length, 5 * 5);
    for (const k of ['tenant', 'contentType', 'cursor', 'lagSeconds', 'blobsDelivered', 'recordsDelivered', 'retryQueue', 'lost', 'lastError']) assert.ok(k in status.at(-1)!.record, `status has ${k}`);
    const state = new StateStore(config.state.path).load();
    assert.equal(state.size, 5);
    assert.equal([...state.values()].reduce((n, f) => n + f.s.recordsDelivered, 0), served());
  } finally {
    cleanup();
    await sim.close();
  }
}

test('12,000 synthetic records: every one exactly once, late blobs caught, nothing re-sent, content added later sent once', async () => {
  // Two 24 h windows (40 h of data), 20 blobs a page, a fifth of the blobs listed late.
  await scenario((anchor, now) => startSimulator({ seed: 7, records: 12_000, spanHours: 40, lateFraction: 0.2, pageSize: 20, anchor, now }));
});

test('the same with a corpus file of 10,000 records (duplicates, odd shapes, no Workload, no Id)', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-corpus-'));
  try {
    const workloads = ['Exchange', 'SharePoint', 'OneDrive', 'AzureActiveDirectory', 'MicrosoftTeams', 'PowerBI', 'Yammer', 'SecurityComplianceCenter', 'ThreatIntelligence', 'Copilot', 'Dynamics 365'];
    const lines: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const rec: Record<string, unknown> = {
        CreationTime: new Date(Date.UTC(2026, 10, 20) + i * 7_000).toISOString().slice(0, 19),
        Id: `corpus-${i}`,
        Operation: i % 40 === 0 ? 'DlpRuleMatch' : 'FileAccessed',
        RecordType: i % 40 === 0 ? 11 : 6,
        Workload: workloads[i % workloads.length],
        ClientIP: i % 3 ? `[2001:db8::${i.toString(16)}]:443` : null,
        Parameters: i % 5 ? [{ Name: 'Identity', Value: `ü-${i}\t"q"` }] : [],
        Extended: { empty: {}, list: [], big: 2 ** 53 - 1, neg: -i, frac: i / 8, emoji: '🔐' },
      };
      if (i % 500 === 7) delete rec.Workload;
      if (i % 700 === 9) delete rec.Id;
      if (i % 1000 === 11) rec.CreationTime = 'not a time';
      lines.push(JSON.stringify(rec));
      if (i % 900 === 13) lines.push(JSON.stringify(rec)); // the API redelivers records
    }
    const file = path.join(dir, 'corpus.ndjson');
    writeFileSync(file, lines.join('\n') + '\n');
    const corpus = parseCorpus(readFileSync(file, 'utf8'), file);
    await scenario((anchor, now) => startSimulator({ seed: 3, corpus, spanHours: 40, lateFraction: 0.2, pageSize: 20, anchor, now }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
