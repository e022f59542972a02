/**
 * The delivery guarantees end to end against the real Fluent Bit (README "Delivery guarantees",
 * DESIGN.md guarantees 1 and 6): the collector in this process (`runOnce`, as `run --once` does it)
 * → Fluent Bit's forward input (TCP, unix socket, TLS) → optional Lua filter → Fluent Bit's
 * out_forward → the harness's exact receiver (test/helpers/fluent-bit.ts). What is checked is
 * what Fluent Bit stored and passed on, not what the collector meant to send:
 * - `record` format: every record the simulator served arrives exactly once, with the router's tag,
 *   its CreationTime as the EventTime (seconds and nanoseconds), and its msgpack the same typed JSON
 *   value as the record's text in the blob (test/helpers/msgpack-typed.ts);
 * - a record nesting 64 containers is dead-lettered (Fluent Bit 5.1.1 acks, then drops such
 *   records: test/integration/fluent-bit-harness.test.ts "Nesting"), one nesting 63 arrives;
 * - `devo` format: `{devo_tag, message}`, `message` byte for byte the record's text in the blob;
 * - plugin/fluent-bit/devo.lua in Fluent Bit: `{devo_tag, message}`, JSON.parse(message) the record,
 *   except that Fluent Bit 5.1.1 hands integers from 2^63 - 512 up to Lua as -2^63 (luaExpected).
 *
 * "Exactly once" needs to know that Fluent Bit has nothing left to pass on, or a late duplicate
 * could arrive after the check. Fluent Bit's monitoring API (`/api/v1/metrics`) counts records in
 * and records flushed; it is a snapshot refreshed about once a second (measured with 5.1.1: the
 * snapshot read right after all records had reached the receiver still showed 2,555 of 3,005 in
 * and 1,809 out; a second later both were 3,005). settle() waits for a snapshot that has taken in
 * at least what the collector sent and flushed all it took in; only then are the counts compared.
 *
 * The shared real-format fixtures (../shared/fixtures/audit-records.ndjson) are read where they
 * exist and never copied here; without them those tests skip with a note.
 *
 * node --import tsx --test test/integration/fluent-bit-e2e.test.ts
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Config } from '../../src/config/schema.ts';
import type { ContentType } from '../../src/management-api/content-types.ts';
import { createRouter } from '../../src/sink/route.ts';
import { parseCorpus, startSimulator, type AuditRecord, type Simulator, type SimulatorOptions } from '../../src/simulator/index.ts';
import { deadLetterPath, DeadLetterFile } from '../../src/state/dead-letter.ts';
import { runOnce, simConfig } from '../helpers/collector-harness.ts';
import { freePort, needFluentBit, startFluentBit, waitFor, type FluentBit, type FluentBitOptions, recordCounts } from '../helpers/fluent-bit.ts';
import type { ReceivedEntry } from '../helpers/forward-receiver.ts';
import { canon, mpDecode, reference, sameValue, wellFormed, type V } from '../helpers/msgpack-typed.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const DEVO_LUA = path.join(repoRoot, 'plugin', 'fluent-bit', 'devo.lua');
const FIXTURES = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'audit-records.ndjson');
const NO_FIXTURES = existsSync(FIXTURES) ? false : `no ${FIXTURES} (a user's clone has no ../shared): the real-format fixture part is skipped`;
const STATUS = 'm365forward.status';
const AUDIT_PREFIX = 'cloud.office365.management.';
const H = 3600_000;
const router = createRouter(`${AUDIT_PREFIX}{table}`, {});

// ---------------------------------------------------------------------------------------------
// The hard shapes, as JSON text (String.raw: the backslashes are JSON escapes, not TypeScript's).

/** A record whose map nests `depth` containers in all (the record map counts 1), maps and arrays alternating. */
function nestedLine(id: string, depth: number): string {
  let inner = '"leaf"';
  for (let level = depth - 1; level >= 1; level--) inner = level % 2 ? `[${inner}]` : `{"d":${inner}}`;
  return `{"Id":"${id}","CreationTime":"2026-11-30T09:00:00","Workload":"Exchange","Operation":"Deep","Deep":${depth > 1 ? inner : '0'}}`;
}

/**
 * Records the codec must carry as the same JSON value (README "Records are not rewritten"): 64-bit
 * integer limits and beyond, -0, exponent and fraction literals, integer-like and duplicate keys
 * (key order is part of the value), escapes, unicode, a lone surrogate, CreationTime with ticks
 * and nanoseconds, the Windows zero date (falls back to the blob's time), no Workload.
 */
const HARD_SHAPES: string[] = [
  String.raw`{"Id":"ints","CreationTime":"2026-11-30T10:00:00","Workload":"Exchange","u64max":18446744073709551615,"i64min":-9223372036854775808,"i64max":9223372036854775807,"p53":9007199254740993,"over":18446744073709551616,"under":-9223372036854775809,"edges":[0,127,128,255,256,65535,65536,4294967295,4294967296,-1,-32,-33,-128,-129,-32768,-32769,-2147483648,-2147483649]}`,
  String.raw`{"Id":"floats","CreationTime":"2026-11-30T10:00:01.5","Workload":"SharePoint","negZero":-0,"negZeroF":-0.0,"e":1E1,"eNeg":1e-7,"money":1.50,"amount":1156492.00,"whole":3.0,"exp":-2.5E+3,"tiny":5e-324,"huge":1.7976931348623157e308,"third":0.3333333333333333}`,
  String.raw`{"2":"two","1":"one","Id":"keys","CreationTime":"2026-11-30T10:00:02.1234567","Workload":"OneDrive","10":"ten","":"empty key","dup":1,"dup":"2","dup":{"x":[3]},"Nested":{"b":1,"a":2,"b":3}}`,
  String.raw`{"Id":"unicode","CreationTime":"2026-11-30T10:00:03.123456789Z","Workload":"MicrosoftTeams","s":"é😀\u00e9\ud83d\ude00 ☃ 研发团队","esc":"\"\\\/\b\f\n\r\t\u0000\u001f\u007f","lone":"a\ud800b","loneLow":"\udc00","k\u00e9y\n":"key with escapes","emptyObj":{},"emptyArr":[],"nulls":[null,1,null],"n":null,"t":true,"f":false}`,
  String.raw`{"Id":"windows-zero","CreationTime":"1601-01-01T00:00:00","Workload":"AzureActiveDirectory","Operation":"UserLoggedIn"}`,
  String.raw`{"Id":"no-workload","CreationTime":"2026-11-30T10:00:04","Operation":"Fragment","RecordType":"6"}`,
  String.raw`{"Id":"odd-workload","CreationTime":"2026-11-30T10:00:05","Workload":"Dynamics 365","Operation":"Retrieve"}`,
  nestedLine('depth-63', 63),
  nestedLine('depth-64', 64),
];
/** Nested deeper than Fluent Bit keeps: dead-lettered in `record` format, sent in `devo` format. */
const TOO_DEEP = 'depth-64';

/** Parses corpus lines as `--corpus` would, keeping each line's text for the expectation. */
function corpus(lines: readonly string[], file: string): { records: AuditRecord[]; texts: TextIndex } {
  const records = parseCorpus(lines.join('\n'), file);
  return { records, texts: textIndex(lines) };
}

/** The shared fixtures' lines, or none. */
function fixtureLines(): string[] {
  return readFileSync(FIXTURES, 'utf8')
    .split('\n')
    .map((l) => l.replace(/\r$/, '').trim())
    .filter((l) => l !== '');
}

// ---------------------------------------------------------------------------------------------
// What was served: each record with its exact text in the blob, its content type and blob time.

/**
 * Corpus lines by the JSON.stringify of their parse (what SimBlob.records gives back), so a served
 * record finds its original text; lines with the same value queue up (a corpus may repeat one).
 */
type TextIndex = Map<string, string[]>;

function textIndex(lines: readonly string[]): TextIndex {
  const index: TextIndex = new Map();
  for (const line of lines) {
    const key = JSON.stringify(JSON.parse(line));
    const q = index.get(key);
    if (q) q.push(line);
    else index.set(key, [line]);
  }
  return index;
}

interface Served {
  /** The record's JSON text as it stands in the blob. */
  text: string;
  record: AuditRecord;
  contentType: ContentType;
  contentCreated: string;
}

/**
 * Every record the simulator serves. Synthetic records were written with JSON.stringify, so their
 * re-serialisation is their text (src/simulator/synthetic.ts); corpus records keep their line's
 * text (src/simulator/corpus.ts), found through `texts` (consumed).
 */
function servedRecords(sim: Simulator, texts?: TextIndex): Served[] {
  const out: Served[] = [];
  for (const b of sim.blobs()) {
    for (const record of b.records) {
      const json = JSON.stringify(record);
      const text = texts?.get(json)?.shift() ?? json;
      out.push({ text, record, contentType: b.contentType as ContentType, contentCreated: b.contentCreated });
    }
  }
  return out;
}

/**
 * The EventTime a record must carry, worked out here rather than with the product's parser:
 * CreationTime (UTC, zone optional, up to 9 fraction digits kept as nanoseconds), else, when that
 * is no valid time an EventTime can hold (uint32 seconds), the blob's contentCreated (README
 * "Records are not rewritten").
 */
function expectedTime(s: Served): { sec: number; nsec: number } {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z?$/.exec(String(s.record.CreationTime));
  if (m) {
    const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
    if (ms >= 0 && ms / 1000 <= 0xffff_ffff) return { sec: ms / 1000, nsec: Number((m[7] ?? '').padEnd(9, '0')) };
  }
  const ms = Date.parse(s.contentCreated);
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1_000_000 };
}

const tagOf = (s: Served) => router.tagFor(s.record, s.contentType);
const entrySec = (e: ReceivedEntry) => Math.floor(e.timeMs / 1000);
const audit = (fb: FluentBit) => fb.receiver.entries.filter((e) => e.tag !== STATUS);
const statuses = (fb: FluentBit) => fb.receiver.entries.filter((e) => e.tag === STATUS);

// ---------------------------------------------------------------------------------------------
// Fluent Bit with its monitoring API, and waiting until it has passed everything on.

interface Pipeline {
  fb: FluentBit;
  httpPort: number;
}

async function startPipeline(opts: FluentBitOptions = {}): Promise<Pipeline> {
  const httpPort = await freePort();
  const fb = await startFluentBit({ ...opts, service: { HTTP_Server: 'On', HTTP_Listen: '127.0.0.1', HTTP_Port: String(httpPort), ...opts.service } });
  return { fb, httpPort };
}


/**
 * Waits until `expected` entries reached the receiver and a metrics snapshot shows Fluent Bit took
 * in at least `expected` records and flushed every one it took in (see the header): anything sent
 * twice is at the receiver by then.
 */
async function settle(p: Pipeline, expected: number): Promise<void> {
  await waitFor(() => p.fb.receiver.entries.length >= expected, `${expected} entries at the receiver (have ${p.fb.receiver.entries.length})`, p.fb, 60_000);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const last = await recordCounts(p.httpPort);
    if (last && last.in >= expected && last.out === last.in) return;
    if (Date.now() > deadline) assert.fail(`Fluent Bit did not settle: metrics say ${last?.in} records in, ${last?.out} flushed, ${expected} sent\n${p.fb.logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------------------------------------
// The checks.

/** Fails at the first difference between two sorted multisets, showing both sides. */
function sameMultiset(have: string[], want: string[], what: string): void {
  have.sort();
  want.sort();
  if (have.length !== want.length || have.some((h, i) => h !== want[i])) {
    const i = have.findIndex((h, k) => h !== want[k]);
    const at = i < 0 ? Math.min(have.length, want.length) : i;
    assert.fail(`${what}: received ${have.length}, expected ${want.length}; first difference at ${at}:\n  got  ${have[at]?.slice(0, 400)}\n  want ${want[at]?.slice(0, 400)}`);
  }
}

/** Served records whose Id no other served record has, by Id: compared one to one for a readable diff. */
function uniqueById(served: Served[]): Map<string, Served> {
  const count = new Map<string, number>();
  for (const s of served) if (typeof s.record.Id === 'string') count.set(s.record.Id, (count.get(s.record.Id) ?? 0) + 1);
  return new Map(served.filter((s) => count.get(s.record.Id as string) === 1).map((s) => [s.record.Id as string, s]));
}

/**
 * `record` format: every served record exactly once (a multiset over tag, seconds, nanoseconds
 * and the typed value of its msgpack), and each record with a unique Id compared on its own with
 * sameValue(mpDecode(rawRecord), reference(text)).
 */
function assertRecordFormat(got: ReceivedEntry[], served: Served[]): void {
  const key = (tag: string, sec: number, nsec: number, v: V) => `${tag} ${sec} ${nsec} ${canon(v)}`;
  const byId = uniqueById(served);
  const have = got.map((e) => {
    assert.ok(e.rawRecord, 'the exact receiver keeps each record\'s bytes');
    const v = mpDecode(e.rawRecord);
    const s = typeof e.record.Id === 'string' ? byId.get(e.record.Id) : undefined;
    if (s) {
      sameValue(v, reference(s.text), `record ${s.record.Id}: the same JSON value as its text in the blob`);
      assert.equal(e.tag, tagOf(s), `record ${s.record.Id}: tag`);
      assert.deepEqual({ sec: entrySec(e), nsec: e.nanos }, expectedTime(s), `record ${s.record.Id}: EventTime is its CreationTime`);
    }
    return key(e.tag, entrySec(e), e.nanos, v);
  });
  const want = served.map((s) => {
    const t = expectedTime(s);
    return key(tagOf(s), t.sec, t.nsec, reference(s.text));
  });
  sameMultiset(have, want, 'record format: every served record exactly once, unchanged');
}

/** `devo` format: `{devo_tag, message}`, devo_tag the tag, message the record's text byte for byte (strict UTF-8 decode). */
function assertDevoFormat(got: ReceivedEntry[], served: Served[]): void {
  const have = got.map((e) => {
    const v = mpDecode(e.rawRecord!);
    assert.equal(v.t, 'map');
    const pairs = v.t === 'map' ? v.v : [];
    const fields = new Map(pairs.map(([k, x]) => [k.t === 'str' ? k.v : '?', x]));
    assert.deepEqual([...fields.keys()].sort(), ['devo_tag', 'message'], 'a devo record has exactly devo_tag and message');
    const tag = fields.get('devo_tag')!;
    const message = fields.get('message')!;
    assert.ok(tag.t === 'str' && message.t === 'str', 'devo_tag and message are strings');
    assert.equal(tag.v, e.tag, 'devo_tag is the Forward tag');
    return `${e.tag} ${entrySec(e)} ${e.nanos} ${message.v}`;
  });
  const want = served.map((s) => {
    const t = expectedTime(s);
    return `${tagOf(s)} ${t.sec} ${t.nsec} ${s.text}`;
  });
  sameMultiset(have, want, 'devo format: every served record exactly once, message byte for byte');
}

/** JSON text of a JS value with sorted keys and -0 marked: deep equality as a string, for multisets. */
function canonJs(v: unknown): string {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (Array.isArray(v)) return `[${v.map(canonJs).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonJs((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * Fluent Bit 5.1.1's Lua filter hands an integer of 2^63 - 512 or more (the ones whose double is
 * 2^63 or above) to Lua as -2^63: src/flb_lua.c flb_lua_pushmsgpack does
 * `lua_pushinteger(l, (double) o->via.u64)`, and that double overflows LuaJIT's int64 lua_Integer
 * (x86 gives INT64_MIN). Measured with this pipeline (a manual experiment, one record of integers):
 * 2^63 - 1024 arrived as 9.223372036854775e+18, while 2^63 - 1, 2^63 and 2^64 - 1 all arrived as
 * -9.223372036854776e+18; -2^63, floats (1e19) and integers up to 2^62 arrived as their doubles.
 * Neither the collector nor devo.lua can undo it (a true -2^63 looks the same), so the hard-shape
 * record `ints` is expected with that damage: if a later Fluent Bit fixes it, this fails and the
 * exception goes. Reported, with the README/devo.lua wording it needs.
 */
const FLB_LUA_INT64_OVERFLOW = -(2 ** 63);

/** The value JSON.parse(message) must have after devo.lua: the record's value, plus the Fluent Bit damage above. */
function luaExpected(s: Served): unknown {
  const value = wellFormed(JSON.parse(s.text)) as Record<string, unknown>;
  if (s.record.Id === 'ints') return { ...value, u64max: FLB_LUA_INT64_OVERFLOW, i64max: FLB_LUA_INT64_OVERFLOW };
  return value;
}

/**
 * Through devo.lua: `{devo_tag, message}` with JSON.parse(message) deep-equal to the record as
 * JSON.parse reads its text (the Lua encoder re-serialises: key order and number spelling change,
 * the value does not; lone surrogates were already U+FFFD in the msgpack, hence wellFormed), with
 * the one exception of luaExpected().
 */
function assertLuaDevo(got: ReceivedEntry[], served: Served[]): void {
  const byId = uniqueById(served);
  const have = got.map((e) => {
    assert.deepEqual(Object.keys(e.record).sort(), ['devo_tag', 'message']);
    assert.equal(e.record.devo_tag, e.tag, 'devo_tag is the Fluent Bit tag');
    const value = JSON.parse(e.record.message as string) as AuditRecord;
    const s = typeof value.Id === 'string' ? byId.get(value.Id) : undefined;
    if (s) assert.deepStrictEqual(value, luaExpected(s), `record ${s.record.Id}: JSON.parse(message) is the record`);
    return `${e.tag} ${entrySec(e)} ${e.nanos} ${canonJs(value)}`;
  });
  const want = served.map((s) => {
    const t = expectedTime(s);
    return `${tagOf(s)} ${t.sec} ${t.nsec} ${canonJs(luaExpected(s))}`;
  });
  sameMultiset(have, want, 'devo.lua: every served record exactly once, the same value');
}

/** The dead-letter file holds exactly these records (by Id), each with its exact text. */
function assertDeadLettered(config: Config, want: Served[]): void {
  const dl = new DeadLetterFile(deadLetterPath(config.state.path)).read();
  assert.deepEqual(dl.map((d) => d.id).sort(), want.map((s) => s.record.Id).sort(), 'dead-lettered records');
  for (const d of dl) {
    const s = want.find((w) => w.record.Id === d.id)!;
    assert.equal(d.record.toString('utf8'), s.text, `dead letter ${d.id}: the record's text kept byte for byte`);
    assert.equal(d.tag, tagOf(s));
    assert.match(d.reason, /nests \d+ levels deep/);
  }
}

/** Waits until Fluent Bit passed on `expectedAudit` audit records and the five status records of each of `runs` runs. */
async function collectAndSettle(p: Pipeline, expectedAudit: number, runs: number): Promise<void> {
  await settle(p, expectedAudit + 5 * runs);
  assert.equal(statuses(p.fb).length, 5 * runs, 'one status record per feed per run');
}

/** Runs the collector once over `sim` into the pipeline with `patch` applied to its config. */
async function runInto(p: Pipeline, sim: Simulator, spanHours: number, patch?: (tree: Record<string, any>) => void, clock?: () => number) {
  const sc = simConfig(sim, { port: p.fb.port ?? 0, spanHours, patch });
  try {
    const summary = await runOnce(sc.config, clock);
    return { summary, config: sc.config, cleanup: sc.cleanup };
  } catch (e) {
    sc.cleanup();
    throw e;
  }
}

async function withSim<T>(opts: SimulatorOptions, body: (sim: Simulator) => Promise<T>): Promise<T> {
  const sim = await startSimulator(opts);
  try {
    return await body(sim);
  } finally {
    await sim.close();
  }
}

async function withPipeline<T>(t: TestContext, opts: FluentBitOptions, body: (p: Pipeline) => Promise<T>): Promise<T | undefined> {
  if (!needFluentBit(t)) return undefined;
  const p = await startPipeline(opts);
  try {
    return await body(p);
  } finally {
    await p.fb.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// The tests.

test('record format, synthetic tenant: 4,005 records of all five content types, late-listed blobs included, each arrives once through Fluent Bit, tagged, timed and unchanged', async (t) => {
  await withPipeline(t, {}, async (p) => {
    // One clock for simulator and collector, standing still between runs: run 1 an hour before the
    // data's end lists only what is listed by then; run 2 after it gets the rest, including blobs
    // created before run 1 and listed after it (the overlap catches them: README "Late content").
    const anchor = Date.now() + H;
    let now = anchor - H;
    const clock = () => now;
    await withSim({ seed: 101, records: 4000, spanHours: 30, lateFraction: 0.25, pageSize: 20, anchor, now: clock }, async (sim) => {
      // The simulator's late blobs (lateFraction) are listed 2-30 min after their creation, all
      // before the anchor; few straddle run 1 by chance, so a few more are made to: one synthetic
      // record of each content type again (new Id), created before run 1 and listed after it.
      const run1 = now;
      for (const [i, b] of [...new Map(sim.blobs().map((b) => [b.contentType, b])).values()].entries()) {
        const record = { ...b.records[0]!, Id: `straddles-run-1-${i}` };
        sim.addRecords([record], { contentType: b.contentType, contentCreated: run1 - (10 + 7 * i) * 60_000, availableAt: run1 + 15 * 60_000 });
      }
      const served = servedRecords(sim);
      assert.equal(served.length, 4005);
      assert.equal(new Set(served.map((s) => s.contentType)).size, 5, 'all five content types');
      assert.ok(new Set(served.map(tagOf)).size >= 8, `several workloads: ${[...new Set(served.map(tagOf))].join(', ')}`);
      assert.ok(sim.blobs().filter((b) => b.availableAt > Date.parse(b.contentCreated)).length >= 20, 'many blobs are listed late');
      const lateAcrossRun1 = sim.blobs().filter((b) => Date.parse(b.contentCreated) < run1 && b.availableAt > run1);
      assert.ok(lateAcrossRun1.length >= 5, `blobs created before run 1 are listed only after it (${lateAcrossRun1.length})`);

      const first = await runInto(p, sim, 31, undefined, clock);
      try {
        assert.deepEqual(first.summary.errors, []);
        now = anchor + 60_000;
        const second = await runOnce(first.config, clock);
        assert.deepEqual(second.errors, []);
        assert.ok(second.late >= 1, `run 2 counts the blobs listed after their window was done (${second.late}; ${lateAcrossRun1.length} straddle run 1)`);
        t.diagnostic(`run 1: ${first.summary.records} records in ${first.summary.blobs} blobs; run 2: ${second.records} records in ${second.blobs} blobs, ${second.late} late`);
        assert.equal(first.summary.records + second.records, served.length);
        await collectAndSettle(p, served.length, 2);
        assertRecordFormat(audit(p.fb), served);
      } finally {
        first.cleanup();
      }
    });
  });
});

test('record format, hard shapes: 64-bit integers, -0, 1E1, 1.50, integer-like and duplicate keys, escapes, 63-deep arrive as the same value; 64-deep is dead-lettered', async (t) => {
  await withPipeline(t, {}, async (p) => {
    const c = corpus(HARD_SHAPES, 'hard-shapes.ndjson');
    await withSim({ seed: 103, corpus: c.records, spanHours: 4 }, async (sim) => {
      const served = servedRecords(sim, c.texts);
      assert.equal(served.length, HARD_SHAPES.length);
      const run = await runInto(p, sim, 5);
      try {
        assert.deepEqual(run.summary.errors, []);
        assert.equal(run.summary.deadLettered, 1, 'the 64-deep record is dead-lettered');
        const deliverable = served.filter((s) => s.record.Id !== TOO_DEEP);
        await collectAndSettle(p, deliverable.length, 1);
        assertRecordFormat(audit(p.fb), deliverable);
        assert.ok(audit(p.fb).some((e) => e.record.Id === 'depth-63'), 'the 63-deep record arrived');
        assert.ok(!audit(p.fb).some((e) => e.record.Id === TOO_DEEP), 'the 64-deep record did not');
        assertDeadLettered(run.config, served.filter((s) => s.record.Id === TOO_DEEP));
      } finally {
        run.cleanup();
      }
    });
  });
});

test('record format, the shared real-format fixture records: each arrives once, the same value', { skip: NO_FIXTURES }, async (t) => {
  await withPipeline(t, {}, async (p) => {
    const c = corpus(fixtureLines(), FIXTURES);
    await withSim({ seed: 107, corpus: c.records, spanHours: 10 }, async (sim) => {
      const served = servedRecords(sim, c.texts);
      const run = await runInto(p, sim, 11);
      try {
        assert.deepEqual(run.summary.errors, []);
        assert.equal(run.summary.deadLettered, 0);
        await collectAndSettle(p, served.length, 1);
        assertRecordFormat(audit(p.fb), served);
      } finally {
        run.cleanup();
      }
    });
  });
});

test('devo format: synthetic records, the hard shapes (both deep ones: a string nests nothing) and the fixtures arrive once as {devo_tag, message}, message byte for byte', async (t) => {
  await withPipeline(t, {}, async (p) => {
    const lines = [...HARD_SHAPES, ...(NO_FIXTURES ? [] : fixtureLines())];
    if (NO_FIXTURES) t.diagnostic(NO_FIXTURES);
    const c = corpus(lines, 'devo-corpus.ndjson');
    await withSim({ seed: 109, records: 1500, spanHours: 10, lateFraction: 0.1 }, async (sim) => {
      sim.addRecords(c.records, { contentCreated: sim.now() - 600_000 });
      const served = servedRecords(sim, c.texts);
      const run = await runInto(p, sim, 11, (tree) => (tree.output.record_format = 'devo'));
      try {
        assert.deepEqual(run.summary.errors, []);
        assert.equal(run.summary.deadLettered, 0, 'nothing is too deep in devo format');
        await collectAndSettle(p, served.length, 1);
        assertDevoFormat(audit(p.fb), served);
      } finally {
        run.cleanup();
      }
    });
  });
});

test('plugin/fluent-bit/devo.lua inside Fluent Bit (record format in): each record arrives once as {devo_tag, message}, JSON.parse(message) the record', async (t) => {
  await withPipeline(t, { lua: { script: DEVO_LUA, call: 'to_devo', match: `${AUDIT_PREFIX}*` } }, async (p) => {
    const lines = [...HARD_SHAPES, ...(NO_FIXTURES ? [] : fixtureLines())];
    if (NO_FIXTURES) t.diagnostic(NO_FIXTURES);
    const c = corpus(lines, 'lua-corpus.ndjson');
    await withSim({ seed: 113, records: 1500, spanHours: 10 }, async (sim) => {
      sim.addRecords(c.records, { contentCreated: sim.now() - 600_000 });
      const served = servedRecords(sim, c.texts);
      const run = await runInto(p, sim, 11);
      try {
        assert.deepEqual(run.summary.errors, []);
        assert.equal(run.summary.deadLettered, 1, 'the 64-deep record is dead-lettered before Fluent Bit');
        const deliverable = served.filter((s) => s.record.Id !== TOO_DEEP);
        await collectAndSettle(p, deliverable.length, 1);
        assertLuaDevo(audit(p.fb), deliverable);
      } finally {
        run.cleanup();
      }
    });
  });
});

test('over a unix socket (output.forward.unix_socket): every record once, unchanged', async (t) => {
  await withPipeline(t, { listen: 'unix' }, async (p) => {
    await withSim({ seed: 127, records: 400, spanHours: 5 }, async (sim) => {
      const served = servedRecords(sim);
      const run = await runInto(p, sim, 6, (tree) => (tree.output.forward = { unix_socket: p.fb.unixPath, ack_timeout: '5s' }));
      try {
        assert.deepEqual(run.summary.errors, []);
        await collectAndSettle(p, served.length, 1);
        assertRecordFormat(audit(p.fb), served);
      } finally {
        run.cleanup();
      }
    });
  });
});

test('over TLS with a client certificate (output.forward.tls, Fluent Bit tls.verify_client_cert): every record once, unchanged', async (t) => {
  await withPipeline(t, { tls: { verifyClientCert: true } }, async (p) => {
    await withSim({ seed: 131, records: 400, spanHours: 5 }, async (sim) => {
      const served = servedRecords(sim);
      const tlsInfo = p.fb.tls!;
      const run = await runInto(p, sim, 6, (tree) => {
        // Key material generated by the harness at run time, written into the config's temp folder.
        const dir = path.dirname(tree.api.ca_file);
        writeFileSync(path.join(dir, 'fb-ca.pem'), tlsInfo.caPem);
        writeFileSync(path.join(dir, 'client.crt'), tlsInfo.clientCertPem!);
        writeFileSync(path.join(dir, 'client.key'), tlsInfo.clientKeyPem!, { mode: 0o600 });
        tree.output.forward.tls = { ca_file: path.join(dir, 'fb-ca.pem'), cert_file: path.join(dir, 'client.crt'), key_file: path.join(dir, 'client.key') };
      });
      try {
        assert.deepEqual(run.summary.errors, []);
        await collectAndSettle(p, served.length, 1);
        assertRecordFormat(audit(p.fb), served);
      } finally {
        run.cleanup();
      }
    });
  });
});
