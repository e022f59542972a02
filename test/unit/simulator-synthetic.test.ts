/** Synthetic tenant generation and corpus planning: determinism, coverage, shapes, timing rules. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { contentTypeForRecord } from '../../src/simulator/corpus.ts';
import { Rng } from '../../src/simulator/prng.ts';
import { planBlobTimes } from '../../src/simulator/schedule.ts';
import { generateSynthetic, planCorpus, type PlannedBlob } from '../../src/simulator/synthetic.ts';
import { CONTENT_TYPES, type AuditRecord } from '../../src/simulator/types.ts';

const anchor = Date.UTC(2025, 4, 20, 12, 0, 0);
const base = { tenantId: '11111111-2222-4333-8444-555555555555', anchor, spanHours: 20, lateFraction: 0.25, lateMinutes: [2, 30] as [number, number] };

/** A planned blob with its records parsed back from the rendered body. */
const parsed = (b: PlannedBlob) => ({ ...b, records: JSON.parse(b.body.bytes.toString('utf8')) as AuditRecord[] });
/** Everything that identifies a plan, bodies as text. */
const fingerprint = (blobs: PlannedBlob[]) => JSON.stringify(blobs.map((b) => [b.contentType, b.createdMs, b.availableAt, b.body.count, b.body.bytes.toString('utf8')]));

describe('synthetic tenant', () => {
  const blobs = generateSynthetic({ ...base, seed: 42, records: 4000 }).map(parsed);
  const records = blobs.flatMap((b) => b.records);

  it('is deterministic for a seed, and differs for another seed', () => {
    const again = generateSynthetic({ ...base, seed: 42, records: 4000 });
    assert.equal(fingerprint(again), fingerprint(blobs));
    const other = generateSynthetic({ ...base, seed: 43, records: 4000 });
    assert.notEqual(fingerprint(other), fingerprint(blobs));
  });

  it('renders each blob once to the bytes served: a JSON array, its count, JSON.stringify of each record', () => {
    for (const b of blobs) {
      assert.ok(Buffer.isBuffer(b.body.bytes));
      assert.equal(b.body.count, b.records.length);
      assert.equal(b.body.bytes.toString('utf8'), `[${b.records.map((r) => JSON.stringify(r)).join(',')}]`);
    }
  });

  it('produces exactly the requested number of records, each with a unique Id', () => {
    assert.equal(records.length, 4000);
    assert.equal(new Set(records.map((r) => r['Id'])).size, 4000);
    assert.equal(generateSynthetic({ ...base, seed: 1, records: 0 }).length, 0);
  });

  it('covers all five content types and at least ten workloads, consistently classified', () => {
    assert.deepEqual(new Set(blobs.map((b) => b.contentType)), new Set(CONTENT_TYPES));
    const workloads = new Set(records.map((r) => r['Workload']).filter((w) => typeof w === 'string'));
    assert.ok(workloads.size >= 10, `only ${[...workloads].join(', ')}`);
    for (const b of blobs) for (const r of b.records) assert.equal(contentTypeForRecord(r), b.contentType);
    const missing = records.filter((r) => !('Workload' in r)).length;
    assert.ok(missing > 0 && missing < records.length * 0.03, `records without Workload: ${missing}`);
  });

  it('writes the common schema: CreationTime without Z, numeric RecordType/UserType, tenant OrganizationId', () => {
    for (const r of records) {
      assert.match(String(r['CreationTime']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
      assert.equal(typeof r['RecordType'], 'number');
      assert.equal(typeof r['UserType'], 'number');
      assert.equal(r['OrganizationId'], base.tenantId);
      assert.match(String(r['Id']), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      for (const k of ['Operation', 'UserKey', 'UserId']) assert.equal(typeof r[k], 'string', k);
    }
    const dlp = blobs.filter((b) => b.contentType === 'DLP.All').flatMap((b) => b.records);
    assert.ok(dlp.every((r) => r['UserKey'] === 'DlpAgent' && String(r['Operation']).startsWith('Dlp')));
  });

  it('carries the JSON edge cases', () => {
    const text = JSON.stringify(records);
    assert.ok(records.some((r) => r['Workload'] === 'AzureActiveDirectory' && r['ClientIP'] === null), 'null ClientIP');
    assert.ok(text.includes('{}') && text.includes('[]'), 'empty object and array');
    assert.ok(text.includes(String(Number.MAX_SAFE_INTEGER)), '2^53-1');
    assert.ok(/[À-ž]/.test(text) && /[\u4e00-\u9fff]/.test(text) && /\p{Extended_Pictographic}/u.test(text), 'accents, CJK, emoji');
    for (const esc of ['\\t', '\\n', '\\r\\n', '\\"', '\\\\', '\\u0007']) assert.ok(text.includes(esc), `escape ${esc}`);
    const withData = records.find((r) => typeof r['Data'] === 'string');
    assert.ok(withData, 'a JSON string in Data');
    assert.equal(typeof JSON.parse(withData['Data'] as string), 'object');
    const sizes = records.map((r) => JSON.stringify(r).length).sort((a, b) => a - b);
    assert.ok(sizes[Math.floor(sizes.length * 0.05)]! >= 400 && sizes[Math.floor(sizes.length * 0.95)]! <= 3500, `sizes ${sizes[0]}..${sizes[sizes.length - 1]}`);
  });

  it('times blobs and records by the rules', () => {
    const sizes = blobs.map((b) => b.records.length);
    assert.ok(Math.min(...sizes) >= 1 && Math.max(...sizes) <= 81);
    let late = 0;
    for (const b of blobs) {
      assert.ok(b.createdMs >= anchor - 20 * 3_600_000 && b.createdMs <= anchor - 60_000, 'contentCreated outside span');
      assert.ok(b.availableAt >= b.createdMs && b.availableAt <= anchor, 'availableAt outside [created, anchor]');
      if (b.availableAt > b.createdMs) {
        late += 1;
        const delay = b.availableAt - b.createdMs;
        assert.ok(delay >= 2 * 60_000 && delay <= 30 * 60_000, `delay ${delay}`);
      }
      for (const r of b.records) {
        const age = b.createdMs - Date.parse(`${r['CreationTime']}Z`);
        assert.ok(age >= 0 && age <= 5 * 86_400_000, `CreationTime ${r['CreationTime']} vs blob ${new Date(b.createdMs).toISOString()}`);
      }
    }
    assert.ok(late > blobs.length * 0.15 && late < blobs.length * 0.35, `late blobs ${late}/${blobs.length}`);
  });

  it('re-delivers records when duplicateFraction is set: same Id, same bytes, in a later blob of the same type', () => {
    const dup = generateSynthetic({ ...base, seed: 42, records: 4000, duplicateFraction: 0.3 }).map(parsed);
    const all = dup.flatMap((b) => b.records);
    const unique = new Set(all.map((r) => r['Id'])).size;
    assert.equal(unique, 4000);
    assert.ok(all.length > 4000);
    const first = new Map<unknown, { text: string; blob: (typeof dup)[number] }>();
    for (const b of [...dup].sort((x, y) => x.createdMs - y.createdMs)) {
      for (const r of b.records) {
        const seen = first.get(r['Id']);
        if (!seen) first.set(r['Id'], { text: JSON.stringify(r), blob: b });
        else {
          assert.equal(JSON.stringify(r), seen.text, 'a re-delivered record is byte-identical');
          assert.equal(b.contentType, seen.blob.contentType);
        }
      }
    }
    for (const b of dup) assert.equal(b.body.count, b.records.length);
  });

  it('generates exactly the requested 20,000 records', () => {
    const big = generateSynthetic({ ...base, seed: 5, records: 20_000 });
    assert.equal(big.reduce((n, b) => n + b.body.count, 0), 20_000);
  });
});

describe('late release in the synthetic tenant', () => {
  const releaseAt = anchor + 20_000;
  const byMs = [30 * 3_600_000, 6 * 86_400_000];
  const blobs = generateSynthetic({ ...base, lateFraction: 0, seed: 3, records: 6000, lateRelease: { fraction: 0.1, byMs, releaseAt } }).map(parsed);

  it('dates the released blobs the given durations before the release, records as for every blob', () => {
    const held = blobs.filter((b) => b.availableAt === releaseAt);
    assert.ok(held.length > 0 && held.length < blobs.length * 0.2, `${held.length}/${blobs.length}`);
    assert.deepEqual(
      held.map((b) => releaseAt - b.createdMs),
      held.map((_, i) => byMs[i % 2]),
      'durations assigned in turn',
    );
    let total = 0;
    let withinHour = 0;
    for (const b of held) {
      for (const r of b.records) {
        const age = b.createdMs - Date.parse(`${r['CreationTime']}Z`);
        assert.ok(age >= 3_000 && age <= 5 * 86_400_000, `CreationTime ${r['CreationTime']} vs ${new Date(b.createdMs).toISOString()}`);
        total += 1;
        if (age <= 3_600_000) withinHour += 1;
      }
    }
    assert.ok(withinHour >= total * 0.9, `most records are a few seconds to an hour older than their blob: ${withinHour}/${total}`);
    for (const b of blobs) if (b.availableAt !== releaseAt) assert.ok(b.availableAt === b.createdMs && b.availableAt <= anchor);
  });
});

describe('blob schedule', () => {
  it('never lists a late blob after the anchor, even when the delay exceeds the span', () => {
    const times = planBlobTimes(new Rng(3), 500, { anchor, spanHours: 0.25, lateFraction: 1, lateMinutes: [10, 60] });
    for (const t of times) {
      assert.ok(t.late);
      assert.ok(t.availableAt <= anchor && t.createdMs >= anchor - 15 * 60_000 && t.availableAt > t.createdMs);
    }
  });
});

describe('corpus planning', () => {
  it('keeps every record, in order within a content type, grouped by contentTypeForRecord', () => {
    const corpus = Array.from({ length: 300 }, (_, i) => ({ Id: `r${i}`, Workload: ['Exchange', 'SharePoint', 'OneDrive', 'AzureActiveDirectory', 'Yammer'][i % 5], Operation: i % 7 === 0 ? 'DlpRuleMatch' : 'X' }));
    const planned = planCorpus(corpus, 1, { anchor, spanHours: 5, lateFraction: 0, lateMinutes: [2, 30] }, contentTypeForRecord).map(parsed);
    const served = planned.flatMap((b) => b.records);
    assert.equal(served.length, 300);
    for (const b of planned) for (const r of b.records) assert.equal(contentTypeForRecord(r), b.contentType);
    for (const ct of new Set(planned.map((b) => b.contentType))) {
      const ids = planned
        .filter((b) => b.contentType === ct)
        .sort((a, b) => a.createdMs - b.createdMs)
        .flatMap((b) => b.records.map((r) => Number(String(r['Id']).slice(1))));
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `order lost in ${ct}`);
    }
  });
});

describe('contentTypeForRecord', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ Workload: 'Exchange', Operation: 'DlpRuleMatch' }, 'DLP.All'],
    [{ Workload: 'SharePoint', RecordType: 11, Operation: 'X' }, 'DLP.All'],
    [{ RecordType: 63 }, 'DLP.All'],
    [{ RecordType: '107' }, 'DLP.All'],
    [{ Workload: 'AzureActiveDirectory' }, 'Audit.AzureActiveDirectory'],
    [{ Workload: 'Exchange', RecordType: 2 }, 'Audit.Exchange'],
    [{ Workload: 'SharePoint' }, 'Audit.SharePoint'],
    [{ Workload: 'OneDrive' }, 'Audit.SharePoint'],
    [{ Workload: 'MicrosoftTeams' }, 'Audit.General'],
    [{ Operation: 'Foo' }, 'Audit.General'],
    [{ Workload: 42 }, 'Audit.General'],
  ];
  for (const [record, expected] of cases) {
    it(`${JSON.stringify(record)} → ${expected}`, () => assert.equal(contentTypeForRecord(record), expected));
  }
});
