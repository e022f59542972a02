import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseApiTime } from '../../src/management-api/dates.ts';
import { createRouter } from '../../src/sink/route.ts';
import { parseCorpus, startSimulator, type Simulator } from '../../src/simulator/index.ts';
import { runOnce, simConfig } from '../helpers/collector-harness.ts';
import { repoRoot } from '../helpers/cli.ts';
import { startForwardReceiver, type ForwardReceiver } from '../helpers/forward-receiver.ts';

/**
 * record_format: devo — every Forward record is {devo_tag, message}: the tag names the Devo table
 * and message parses back to exactly the record the API served (the same JSON value).
 */
const router = createRouter('cloud.office365.management.{table}', {});
let rx: ForwardReceiver;
before(async () => {
  rx = await startForwardReceiver();
});
after(async () => {
  await rx?.close();
});

async function check(sim: Simulator) {
  rx.entries.length = 0;
  const { config, cleanup } = simConfig(sim, { port: rx.port, spanHours: 24, patch: (t) => (t.output.record_format = 'devo') });
  try {
    const s = await runOnce(config);
    assert.deepEqual(s.errors, []);
    const served = sim.blobs().flatMap((b) => b.records.map((record) => ({ b, record })));
    const audit = rx.entries.filter((e) => e.tag !== config.status.tag);
    assert.equal(audit.length, served.length);
    const want = served.map(({ b, record }) => JSON.stringify([router.tagFor(record, b.contentType as never), parseApiTime(record.CreationTime) ?? parseApiTime(b.contentCreated), record])).sort();
    const have = audit
      .map((e) => {
        assert.deepEqual(Object.keys(e.record).sort(), ['devo_tag', 'message']);
        assert.equal(typeof e.record.message, 'string');
        assert.equal(e.record.devo_tag, e.tag, 'devo_tag is the Forward tag (the Devo table)');
        return JSON.stringify([e.record.devo_tag, e.timeMs, JSON.parse(e.record.message as string)]);
      })
      .sort();
    assert.deepEqual(have, want);
    // Status records come in the same shape, on their own tag.
    const status = rx.entries.filter((e) => e.tag === config.status.tag);
    assert.equal(status.length, 5);
    assert.equal(JSON.parse(status[0]!.record.message as string).type, 'm365-forward.status');
  } finally {
    cleanup();
  }
}

test('devo format over the synthetic tenant: every message is the record served', async () => {
  const sim = await startSimulator({ seed: 17, records: 3000, spanHours: 20, lateFraction: 0.1 });
  try {
    await check(sim);
  } finally {
    await sim.close();
  }
});

const fixtures = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'audit-records.ndjson');
test('devo format over the shared real-format fixture records', { skip: existsSync(fixtures) ? false : `no ${fixtures} (a user's clone has no ../shared)` }, async () => {
  const sim = await startSimulator({ corpus: parseCorpus(readFileSync(fixtures, 'utf8'), fixtures), spanHours: 20 });
  try {
    await check(sim);
  } finally {
    await sim.close();
  }
});
