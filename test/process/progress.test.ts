/**
 * Progress on a terminal (issue 8): `run --once` and `replay` draw a live line per feed on stderr
 * when it is a terminal, redrawn in place with ANSI cursor movement, and write nothing but their
 * JSON log lines (and the final summary) when stderr is a pipe.
 *
 * The terminal is a real pseudo-terminal: util-linux `script -qec CMD /dev/null` runs the CLI with
 * its stdin, stdout and stderr on a pty and copies what the CLI writes there to its own stdout
 * (with the pty's \r\n line ends). The simulator answers every API call after 150 ms, as the real
 * API takes 100-800 ms, so the backlog takes a few redraws to drain. The assertions do not depend
 * on how many: the display also redraws after every log line, and stop() always draws the final
 * frame over the one before it. A replay draws its first frame at once (its feeds exist before the
 * display starts); `run --once`, whose feeds appear while the collector starts, draws it at the
 * latest after the first "subscription started" line of this fresh simulator, before the stop.
 *
 * node --import tsx --test test/process/progress.test.ts      (about 20 s)
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot, runCli, startSimulateProcess } from '../helpers/cli.ts';
import { startForwardReceiver, type ForwardReceiver } from '../helpers/forward-receiver.ts';

const RECORDS = 1500;
const FEEDS = 5;
const ESC = '\u001b[';
const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

let dir: string;
let sim: Awaited<ReturnType<typeof startSimulateProcess>>;
let rx: ForwardReceiver;
let cfg: string;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'm365-progress-'));
  rx = await startForwardReceiver();
  cfg = path.join(dir, 'sim.yaml');
  sim = await startSimulateProcess(['--records', String(RECORDS), '--seed', '11', '--latency-ms', '150', '--page-size', '8', '--write-config', cfg]);
});

after(async () => {
  await sim?.stop();
  await rx?.close();
  rmSync(dir, { recursive: true, force: true });
});

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs the CLI on a pseudo-terminal; resolves with its exit code and everything it wrote there. */
async function runOnPty(args: string[]): Promise<{ code: number | null; out: string }> {
  const cmd = [process.execPath, '--import', 'tsx', path.join(repoRoot, 'src', 'cli.ts'), ...args].map(quote).join(' ');
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: repoRoot, env: { ...process.env, TERM: 'xterm' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, out: out.replace(/\r\n/g, '\n') };
}

const LINE = /^simulator\/(\S+) +([\d,]+) blobs +([\d,]+) records +(?:[\d,]+|-) records\/s +lag (\S+)$/;

/**
 * The last frame: what follows the last "move up over the 5 feed lines and clear" before `marker`
 * (the summary line). Each of its lines is a feed's; returns them parsed.
 */
function lastFrame(out: string, marker: RegExp): { feed: string; blobs: number; records: number; lag: string }[] {
  const end = out.search(marker);
  assert.ok(end > 0, `the summary follows the frames:\n${JSON.stringify(out.slice(-2000))}`);
  const start = out.lastIndexOf(`${ESC}${FEEDS}F${ESC}J`, end);
  assert.ok(start >= 0, `a frame of ${FEEDS} lines is redrawn in place (CSI ${FEEDS} F, CSI J):\n${JSON.stringify(out.slice(0, 3000))}`);
  const lines = out.slice(start + `${ESC}${FEEDS}F${ESC}J`.length, end).split('\n').filter((l) => l !== '');
  assert.equal(lines.length, FEEDS, JSON.stringify(lines));
  return lines.map((l) => {
    const m = LINE.exec(l);
    assert.ok(m, `a progress line: ${JSON.stringify(l)}`);
    return { feed: m[1]!, blobs: Number(m[2]!.replace(/,/g, '')), records: Number(m[3]!.replace(/,/g, '')), lag: m[4]! };
  });
}

/** Every line of a piped stderr is a JSON log line, or one of the command's own `m365-forward:` summary lines (and their indented details). */
function assertPlain(stderr: string): void {
  assert.ok(!stderr.includes('\u001b'), 'no escape sequence in a pipe');
  assert.doesNotMatch(stderr, /records\/s/, 'no progress line in a pipe');
  for (const line of stderr.split('\n').filter((l) => l !== '')) {
    if (line.startsWith('m365-forward: ') || line.startsWith('  ')) continue;
    const o = JSON.parse(line) as Record<string, unknown>;
    assert.equal(typeof o.level, 'string', line);
    assert.equal(typeof o.msg, 'string', line);
  }
}

describe('progress on a terminal', { skip: hasScript ? false : 'util-linux `script` is not installed' }, () => {
  test('run --once on a terminal: a live line per feed, redrawn in place, log lines above it; the last frame holds the totals', { timeout: 120_000 }, async () => {
    const r = await runOnPty(['run', '-c', cfg, '--once', '--forward-port', String(rx.port), '--state', path.join(dir, 'tty.state.json')]);
    assert.equal(r.code, 0, r.out);
    const frame = lastFrame(r.out, /m365-forward: delivered/);
    assert.equal(frame.reduce((n, f) => n + f.records, 0), RECORDS, 'the last frame counts every record delivered');
    assert.match(r.out, new RegExp(`delivered ${RECORDS} records in ${frame.reduce((n, f) => n + f.blobs, 0)} blobs`));
    assert.deepEqual(frame.map((f) => f.feed).sort(), ['Audit.AzureActiveDirectory', 'Audit.Exchange', 'Audit.General', 'Audit.SharePoint', 'DLP.All']);
    // The JSON log lines are still there, each whole on its own line.
    assert.match(r.out, /^\{"time":"[^"]+","level":"info","msg":"starting"/m);
  });

  test('run --once through a pipe: only JSON log lines and the summary, no escape sequence', { timeout: 120_000 }, async () => {
    const r = await runCli(['run', '-c', cfg, '--once', '--forward-port', String(rx.port), '--state', path.join(dir, 'pipe.state.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`delivered ${RECORDS} records`));
    assertPlain(r.stderr);
  });

  test('replay on a terminal ends with every feed at lag 0s; through a pipe it writes no escape sequence', { timeout: 120_000 }, async () => {
    const from = new Date(Date.now() - 21 * 3600_000).toISOString().slice(0, 19);
    const args = ['replay', '-c', cfg, '--tenant', 'simulator', '--from', from, '--forward-port', String(rx.port)];
    const tty = await runOnPty(args);
    assert.equal(tty.code, 0, tty.out);
    const frame = lastFrame(tty.out, /m365-forward: replayed/);
    assert.equal(frame.reduce((n, f) => n + f.records, 0), RECORDS);
    assert.deepEqual(frame.map((f) => f.lag), Array(FEEDS).fill('0s'), 'the whole range is covered');
    const pipe = await runCli(args);
    assert.equal(pipe.code, 0, pipe.stderr);
    assert.match(pipe.stderr, new RegExp(`sent ${RECORDS} records`));
    assertPlain(pipe.stderr);
  });
});
