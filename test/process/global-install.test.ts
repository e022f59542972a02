/**
 * `npm install -g` from a packed tarball, then the `m365-forward` command from `/` (issue 8,
 * "Install and run from anywhere"): the tarball carries the bundle `npm pack` built, npm links the
 * bin, and it runs with no clone and no tsx on the command line. Installed into a temporary
 * prefix, never the machine's global one. Needs the npm registry for the dependencies (CI has it);
 * without it the install fails with npm's own message.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from '../helpers/cli.ts';

const run = promisify(execFile);

test('npm install -g <packed tarball>: m365-forward runs from /', { timeout: 600_000 }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-global-'));
  try {
    const { NODE_OPTIONS: _drop, ...env } = process.env; // the test runner's --import tsx must not help
    const npmEnv = { ...env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
    await run('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: repoRoot, env: npmEnv, timeout: 180_000 });
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack made a tarball');
    const prefix = path.join(dir, 'prefix');
    await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', path.join(dir, tarball)], { cwd: dir, env: npmEnv, timeout: 480_000 });
    const bin = path.join(prefix, 'bin', 'm365-forward');
    assert.ok(existsSync(bin), 'npm linked the bin');
    const installed = path.join(prefix, 'lib', 'node_modules', 'm365-forward');
    assert.ok(existsSync(path.join(installed, 'src', '.build', 'cli.mjs')), 'the tarball carries the bundle');
    // Run as an operator does: the command by its path, from /, without the clone's node_modules.
    const version = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).version as string;
    const v = await run(bin, ['--version'], { cwd: '/', env, timeout: 60_000 });
    assert.equal(v.stdout.trim(), version);
    const demo = await run(bin, ['demo', '--records', '25'], { cwd: '/', env, timeout: 120_000 });
    assert.match(demo.stderr, /demo summary: 25 records in \d+ blobs from 5 feeds/);
    // And through the sources (no bundle): tsx is found from the installed package, not from /.
    const viaTsx = await run(bin, ['--version'], { cwd: '/', env: { ...env, M365_FORWARD_NO_BUNDLE: '1' }, timeout: 60_000 });
    assert.equal(viaTsx.stdout.trim(), version);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
