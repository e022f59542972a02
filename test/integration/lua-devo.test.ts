/**
 * plugin/fluent-bit/devo.lua under LuaJIT: JSON.parse of every `message` it writes is the record the
 * API served (the same JSON value), for the simulator's synthetic records and the shared real-format
 * fixtures. Each record is rebuilt in Lua the way Fluent Bit 2.2+ presents msgpack to a Lua filter
 * with `enable_flb_null on`: maps and arrays carry a metatable {type=2}/{type=1}, nulls are the
 * global `flb_null`, numbers are doubles, strings are the UTF-8 bytes. Also runs test/lua/devo_test.lua.
 * Needs `luajit` on PATH (Debian/Ubuntu: apt-get install luajit). Run:
 * node --import tsx --test test/integration/lua-devo.test.ts
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startSimulator } from '../../src/simulator/index.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const filterPath = path.join(repoRoot, 'plugin', 'fluent-bit', 'devo.lua');
const fixtures = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'audit-records.ndjson');
const TAG = 'cloud.office365.management.x';
const BATCH = 500;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * A Lua string literal holding the UTF-8 bytes of `s`. Every byte outside printable ASCII, and `"`
 * and `\`, is a three-digit decimal escape (always three digits, so a following digit cannot join it).
 */
function luaString(s: string): string {
  let out = '"';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${String(b).padStart(3, '0')}`;
  }
  return `${out}"`;
}

/** Lua source building `v` as Fluent Bit would hand it to the filter. */
function luaValue(v: Json): string {
  if (v === null) return 'flb_null';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    assert.ok(Number.isFinite(v), `JSON has no ${v}`);
    // JS prints the shortest text that reads back as the same double; Lua's reader is exact too.
    return `(${String(v)})`;
  }
  if (typeof v === 'string') return luaString(v);
  if (Array.isArray(v)) return `arr{${v.map(luaValue).join(',')}}`;
  return `map{${Object.entries(v)
    .map(([k, x]) => `[${luaString(k)}]=${luaValue(x)}`)
    .join(',')}}`;
}

/**
 * One Lua script per batch. Each record is built inside its own function, so no single Lua function
 * collects the constants of hundreds of records. Output: one line per record, `code<TAB>tag<TAB>message`;
 * a raw newline inside a message would break the line count, which the caller checks.
 */
function luaScript(records: Json[]): string {
  const lines = [
    'flb_null = newproxy(true)',
    'local ARRAY_MT, MAP_MT = { type = 1 }, { type = 2 }',
    'function arr(t) return setmetatable(t, ARRAY_MT) end',
    'function map(t) return setmetatable(t, MAP_MT) end',
    `dofile(${luaString(filterPath)})`,
    'local function run(build)',
    `  local code, ts, out = to_devo(${luaString(TAG)}, 1234.5, build())`,
    "  assert(ts == 1234.5, 'timestamp changed')",
    "  io.write(code, '\\t', out.devo_tag, '\\t', out.message, '\\n')",
    'end',
  ];
  for (const r of records) lines.push(`run(function() return ${luaValue(r)} end)`);
  return `${lines.join('\n')}\n`;
}

let tmp: string;
before(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'lua-devo-'));
});
after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/**
 * Without luajit on a developer's machine these tests are skipped with a note, so README's
 * `npm test` holds on a fresh machine; under CI (CI=true, where .ci/run installs LuaJIT) a
 * missing luajit is a failure.
 */
const missingLuajit = (spawnSync('luajit', ['-v']).error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
const needsLuajit = { skip: missingLuajit && !process.env.CI ? 'luajit is not installed (apt-get install luajit); CI installs it and runs these tests' : false };

function luajit(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('luajit', args, { cwd: repoRoot, maxBuffer: 512 * 1024 * 1024 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    assert.fail('luajit is not on PATH: install it (Debian/Ubuntu: apt-get install luajit); CI installs it in .ci/run');
  }
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
}

/** Runs every record through to_devo in LuaJIT and checks the round trip. */
function assertRoundTrip(records: Json[]): void {
  for (let start = 0; start < records.length; start += BATCH) {
    const batch = records.slice(start, start + BATCH);
    const file = path.join(tmp, `batch-${start}.lua`);
    writeFileSync(file, luaScript(batch));
    const r = luajit([file]);
    assert.equal(r.status, 0, `luajit failed on records ${start}..${start + batch.length - 1}:\n${r.stderr}`);
    const lines = r.stdout.split('\n');
    assert.equal(lines.pop(), '', 'output ends with a newline');
    assert.equal(lines.length, batch.length, 'one line per record (no raw newline in a message)');
    lines.forEach((line, i) => {
      const [code, tag, message, ...rest] = line.split('\t');
      const where = `record ${start + i}`;
      assert.equal(rest.length, 0, `${where}: no raw tab in a message`);
      assert.equal(code, '2', `${where}: return code`);
      assert.equal(tag, TAG, `${where}: devo_tag is the Fluent Bit tag`);
      assert.deepStrictEqual(JSON.parse(message!), batch[i], `${where}: message is the same JSON value`);
    });
  }
}

test('test/lua/devo_test.lua passes under LuaJIT', needsLuajit, () => {
  const r = luajit(['test/lua/devo_test.lua']);
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /\d+ passed, 0 failed\n$/);
});

test('the simulator synthetic records round-trip through to_devo', needsLuajit, async () => {
  const sim = await startSimulator({ seed: 1, records: 2000 });
  const served = sim.blobs().flatMap((b) => b.records);
  await sim.close();
  // The API serves the records as JSON text: compare against exactly that value.
  const records = served.map((r) => JSON.parse(JSON.stringify(r)) as Json);
  assert.equal(records.length, 2000);
  const text = JSON.stringify(records);
  for (const edge of ['{}', '[]', ':null', String(Number.MAX_SAFE_INTEGER), '\\u0007', '\\r\\n', '\\"', '\\\\']) {
    assert.ok(text.includes(edge), `the synthetic records still carry ${edge}`);
  }
  assert.ok(/[À-ž]/.test(text) && /[\u4e00-\u9fff]/.test(text) && /\p{Extended_Pictographic}/u.test(text), 'accents, CJK, emoji');
  assertRoundTrip(records);
});

test(
  'the shared real-format fixture records round-trip through to_devo',
  { skip: needsLuajit.skip || (existsSync(fixtures) ? false : "no ../shared/fixtures (a user's clone)") },
  () => {
    // JSON.parse keeps the last of a duplicated key, which is also what reaches Fluent Bit.
    const records = readFileSync(fixtures, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Json);
    assert.ok(records.length > 0);
    assertRoundTrip(records);
  },
);

test('edge values round-trip through to_devo', needsLuajit, () => {
  assertRoundTrip([
    { floats: [0.1, 1e-7, 1.5e300, -2.5, 0.1 + 0.2, 5e-324, 1.7976931348623157e308, 2 ** 60, 1e21, -1e-300] },
    { ints: [0, -3, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 53, 4294967296, -2147483649] },
    { empty: { a: {}, b: [], c: [{}], d: [[]], e: '' }, '': 'empty key', '1': 'numeric-looking key' },
    { nulls: [null, 1, null], n: null, deep: { a: { b: { c: [null, { d: null }] } } } },
    { text: 'é 漢字 😀 \u0000\u0001\u001f\u007f\u0080 "q" \\ / \b\f\n\r\t', 'ké\ny"': true, f: false },
  ]);
});
