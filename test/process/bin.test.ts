/**
 * The `m365-forward` bin (src/bin.mjs) runs from any working directory: through the bundle
 * `npm run build` makes, and through the TypeScript sources with tsx registered from the
 * package's own dependencies when there is no current bundle (a bare `--import tsx` resolved from
 * the working directory used to fail with "Cannot find package 'tsx' imported from /").
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from '../helpers/cli.ts';

const run = promisify(execFile);
const bin = path.join(repoRoot, 'src', 'bin.mjs');
const version = (JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

async function fromRoot(args: string[], env: NodeJS.ProcessEnv = {}) {
  // An env without NODE_OPTIONS: the test runner's own `--import tsx` must not help the bin.
  const { NODE_OPTIONS: _drop, ...base } = process.env;
  return run(process.execPath, [bin, ...args], { cwd: '/', env: { ...base, ...env }, timeout: 60_000 });
}

for (const mode of ['sources through tsx', 'bundle'] as const) {
  test(`the bin runs from / (${mode})`, async () => {
    const env = mode === 'bundle' ? {} : { M365_FORWARD_NO_BUNDLE: '1' };
    if (mode === 'bundle') {
      await run(process.execPath, [path.join(repoRoot, 'src', 'build.mjs')], { timeout: 120_000 });
      assert.ok(existsSync(path.join(repoRoot, 'src', '.build', 'cli.mjs')), 'npm run build wrote src/.build/cli.mjs');
    }
    const v = await fromRoot(['--version'], env);
    assert.equal(v.stdout.trim(), version);
    const demo = await fromRoot(['demo', '--records', '30'], env);
    assert.match(demo.stderr, /demo summary: 30 records in \d+ blobs from 5 feeds/);
    assert.equal(demo.stdout.split('\n').filter((l) => l.startsWith('{"tag":"cloud.office365.management.')).length, 30);
  });
}
