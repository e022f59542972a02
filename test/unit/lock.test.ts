import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CollectorError } from '../../src/errors.ts';
import {
  acquireStateLock,
  formatLock,
  judgeHolder,
  looksLikeCollector,
  parseLock,
  parseStartTime,
  systemProbe,
  type ProcessProbe,
} from '../../src/state/lock.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const LOCK_MODULE = pathToFileURL(path.join(REPO, 'src/state/lock.ts')).href;

function tmp(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'm365-lock-'));
}

/** A STATE_IO, fatal CollectorError whose message is one line matching `re` (never a stack trace). */
function clearError(re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof CollectorError, `a CollectorError, got ${String(e)}`);
    assert.equal(e.code, 'STATE_IO');
    assert.equal(e.fatal, true);
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
    assert.match(e.message, re);
    return true;
  };
}

const startTimeOf = (pid: number) => parseStartTime(readFileSync(`/proc/${pid}/stat`, 'utf8'));
const lockOf = (stateFile: string) => parseLock(readFileSync(`${stateFile}.lock`, 'utf8'));

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync('true');
  assert.ok(r.pid && r.status === 0);
  return r.pid;
}

/** Starts a long-running child and resolves once it runs its own program (so /proc shows its command line). */
async function live(cmd: string, args: string[]): Promise<ChildProcess & { pid: number }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    if (cmd === process.execPath) child.stdout!.once('data', () => resolve());
    else child.once('spawn', () => resolve());
  });
  return child as ChildProcess & { pid: number };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** A process whose command line looks like a collector's (`… m365-forward`). */
const liveCollectorLike = () => live(process.execPath, ['-e', 'process.stdout.write("ready\\n"); setInterval(() => {}, 1000)', 'm365-forward']);

test('/proc/<pid>/stat: field 22 is read after the command name, whatever that name holds', () => {
  const rest = 'S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 20 21';
  assert.equal(parseStartTime(`77 (node) ${rest}`), 424242);
  assert.equal(parseStartTime(`77 (a b) c) 9 9) ${rest}`), 424242, 'spaces and ) inside comm');
  assert.equal(parseStartTime('77 (node) S 1 2'), undefined, 'too short');
  assert.equal(parseStartTime(undefined), undefined);
  const own = parseStartTime(readFileSync('/proc/self/stat', 'utf8'));
  assert.ok(own !== undefined && own > 0, 'this process has a start time');
});

test('lock text: JSON with pid, startTime and marker; the old pid-only format is read too', () => {
  assert.deepEqual(JSON.parse(formatLock({ pid: 12, startTime: 34 })), { pid: 12, startTime: 34, cmd: 'm365-forward' });
  assert.deepEqual(parseLock(formatLock({ pid: 12, startTime: 34 })), { pid: 12, startTime: 34 });
  assert.deepEqual(parseLock(formatLock({ pid: 12 })), { pid: 12 });
  assert.deepEqual(parseLock('4321\n'), { pid: 4321 });
  for (const bad of ['', '0\n', '-5', 'x', '{"pid":"12"}', '{"pid":0}', 'null', '[1]']) assert.equal(parseLock(bad), undefined, bad);
});

test('a collector is recognised by its bin name or src/cli.ts', () => {
  assert.ok(looksLikeCollector('node --import tsx /opt/app/src/cli.ts run -c /etc/c.yaml'));
  assert.ok(looksLikeCollector('node --import tsx /usr/local/bin/m365-forward run -c c.yaml'));
  assert.ok(looksLikeCollector('node /srv/collector/src/bin.mjs run -c c.yaml'));
  assert.ok(looksLikeCollector('node /srv/collector/src/.build/cli.mjs run -c c.yaml'));
  assert.ok(!looksLikeCollector('sleep 60'));
  assert.ok(!looksLikeCollector(''));
});

test('judgeHolder: stale only when the holder provably is not a collector holding it now', () => {
  const self = { pid: 100, startTime: 5000 };
  const holder = { pid: 200, startTime: 7000 };
  const collector = { alive: true, startTime: 7000, cmdline: 'node --import tsx /x/src/cli.ts run' };
  assert.deepEqual(judgeHolder(holder, self, collector), { stale: false, why: 'collector' });
  assert.deepEqual(judgeHolder(holder, self, { alive: false }), { stale: true, why: 'dead' });
  assert.deepEqual(judgeHolder(holder, self, { ...collector, startTime: 7001 }), { stale: true, why: 'pid-reused' });
  assert.deepEqual(judgeHolder(holder, self, { ...collector, cmdline: 'sleep 60' }), { stale: true, why: 'not-a-collector' });
  // Old format (no startTime recorded): liveness and command line decide.
  assert.deepEqual(judgeHolder({ pid: 200 }, self, collector), { stale: false, why: 'collector' });
  assert.deepEqual(judgeHolder({ pid: 200 }, self, { ...collector, cmdline: 'bash' }), { stale: true, why: 'not-a-collector' });
  // Without /proc (not Linux): alive is enough to count as held.
  assert.deepEqual(judgeHolder(holder, { pid: 100 }, { alive: true }), { stale: false, why: 'alive' });
  // Our own pid: this process (same start), or a predecessor that had our pid (container restart).
  assert.deepEqual(judgeHolder({ pid: 100, startTime: 5000 }, self, collector), { stale: false, why: 'this-process' });
  assert.deepEqual(judgeHolder({ pid: 100, startTime: 4000 }, self, collector), { stale: true, why: 'pid-reused' });
  assert.deepEqual(judgeHolder({ pid: 100 }, self, collector), { stale: true, why: 'pid-reused' });
});

test('lock, release, lock again; a second lock in the same process is refused; release leaves nothing behind', () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'sub', 'state.json');
    const lock = acquireStateLock(file);
    assert.equal(lock.file, `${file}.lock`);
    assert.deepEqual(JSON.parse(readFileSync(lock.file, 'utf8')), { pid: process.pid, startTime: startTimeOf(process.pid), cmd: 'm365-forward' });
    assert.deepEqual(readdirSync(path.join(dir, 'sub')), ['state.json.lock'], 'no temporary file left');
    assert.throws(() => acquireStateLock(file), clearError(new RegExp(`already locked by this process \\(pid ${process.pid}\\)`)));
    lock.release();
    assert.deepEqual(readdirSync(path.join(dir, 'sub')), []);
    const again = acquireStateLock(file);
    again.release();
    again.release(); // twice is harmless
    assert.deepEqual(readdirSync(path.join(dir, 'sub')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("release does not remove someone else's lock", () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'state.json');
    const lock = acquireStateLock(file);
    const other = formatLock({ pid: process.ppid, startTime: 1 });
    writeFileSync(lock.file, other); // as if another collector had taken it over meanwhile
    lock.release();
    assert.equal(readFileSync(lock.file, 'utf8'), other);
    assert.deepEqual(readdirSync(dir), ['state.json.lock']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock holding the pid of a dead process is taken over (new and old format)', () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'state.json');
    for (const text of [formatLock({ pid: deadPid(), startTime: 1234 }), `${deadPid()}\n`]) {
      writeFileSync(`${file}.lock`, text);
      const lock = acquireStateLock(file);
      assert.equal(lockOf(file)?.pid, process.pid);
      lock.release();
      assert.deepEqual(readdirSync(dir), [], 'no lock, takeover or temporary file left');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock holding the pid of a live unrelated process is taken over', async () => {
  const dir = tmp();
  const sleeper = await live('sleep', ['60']);
  try {
    const file = path.join(dir, 'state.json');
    for (const text of [formatLock({ pid: sleeper.pid, startTime: startTimeOf(sleeper.pid)! }), `${sleeper.pid}\n`]) {
      writeFileSync(`${file}.lock`, text);
      const lock = acquireStateLock(file);
      assert.equal(lockOf(file)?.pid, process.pid);
      lock.release();
    }
  } finally {
    await stop(sleeper);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock held by a live m365-forward is refused with its pid; one whose start time differs is taken over', async () => {
  const dir = tmp();
  const other = await liveCollectorLike();
  try {
    const file = path.join(dir, 'state.json');
    for (const text of [formatLock({ pid: other.pid, startTime: startTimeOf(other.pid)! }), `${other.pid}\n`]) {
      writeFileSync(`${file}.lock`, text);
      assert.throws(
        () => acquireStateLock(file),
        clearError(new RegExp(`state file .*state\\.json is in use by another m365-forward \\(pid ${other.pid}\\); stop it, or give each config its own state\\.path`)),
      );
      assert.equal(readFileSync(`${file}.lock`, 'utf8'), text, 'lock untouched');
      assert.deepEqual(readdirSync(dir), ['state.json.lock'], 'no takeover file left');
    }
    // Same pid, other start time: the pid now belongs to another process than the one that locked.
    writeFileSync(`${file}.lock`, formatLock({ pid: other.pid, startTime: startTimeOf(other.pid)! - 1 }));
    const lock = acquireStateLock(file);
    assert.equal(lockOf(file)?.pid, process.pid);
    lock.release();
    // Our own pid with an older start time: a predecessor in a restarted container.
    writeFileSync(`${file}.lock`, formatLock({ pid: process.pid, startTime: startTimeOf(process.pid)! - 1 }));
    acquireStateLock(file).release();
  } finally {
    await stop(other);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without /proc (not Linux) only liveness counts', async () => {
  const dir = tmp();
  const sleeper = await live('sleep', ['60']);
  const noProc: ProcessProbe = { isAlive: systemProbe.isAlive, readProc: () => undefined };
  try {
    const file = path.join(dir, 'state.json');
    writeFileSync(`${file}.lock`, `${sleeper.pid}\n`);
    assert.throws(() => acquireStateLock(file, { probe: noProc }), clearError(new RegExp(`in use by another m365-forward \\(pid ${sleeper.pid}\\)`)));
    writeFileSync(`${file}.lock`, `${deadPid()}\n`);
    const lock = acquireStateLock(file, { probe: noProc });
    assert.deepEqual(JSON.parse(readFileSync(lock.file, 'utf8')), { pid: process.pid, cmd: 'm365-forward' }, 'no start time to record');
    lock.release();
  } finally {
    await stop(sleeper);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an empty or garbage lock is taken over once it has been there a moment', () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'state.json');
    const old = new Date(Date.now() - 60_000);
    for (const text of ['', 'garbage\n']) {
      writeFileSync(`${file}.lock`, text);
      // Just written: it may be a lock being created (no hard links), so it is waited for.
      assert.throws(() => acquireStateLock(file, { busyWaitMs: 30 }), clearError(/names no process and was written moments ago/));
      utimesSync(`${file}.lock`, old, old);
      acquireStateLock(file).release();
      assert.deepEqual(readdirSync(dir), []);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a takeover in progress is waited for; a takeover file left by a dead starter is itself stale', () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'state.json');
    const stale = `${deadPid()}\n`;
    writeFileSync(`${file}.lock`, stale);
    writeFileSync(`${file}.lock.takeover`, '1 x\n');
    assert.throws(() => acquireStateLock(file, { busyWaitMs: 50 }), clearError(/taking it over right now \(.*\.lock\.takeover exists\)/));
    assert.equal(readFileSync(`${file}.lock`, 'utf8'), stale, 'the stale lock was not touched without the takeover file');
    const old = new Date(Date.now() - 60_000);
    utimesSync(`${file}.lock.takeover`, old, old);
    const lock = acquireStateLock(file, { busyWaitMs: 50 });
    assert.equal(lockOf(file)?.pid, process.pid);
    assert.deepEqual(readdirSync(dir), ['state.json.lock'], 'the dead takeover file is gone');
    lock.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock path that is a directory or a dangling symlink, or a state folder under a file, is one clear error', () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'state.json');
    mkdirSync(`${file}.lock`);
    assert.throws(() => acquireStateLock(file), clearError(/lock path .*state\.json\.lock is a directory, not a lock file; remove it/));
    rmSync(`${file}.lock`, { recursive: true });
    symlinkSync(path.join(dir, 'nowhere'), `${file}.lock`);
    assert.throws(() => acquireStateLock(file, { busyWaitMs: 50 }), clearError(/lock path .*state\.json\.lock is not a regular file/));
    writeFileSync(path.join(dir, 'plain'), '');
    assert.throws(() => acquireStateLock(path.join(dir, 'plain', 'state.json')), clearError(/cannot create the state folder .*plain.*: E(NOTDIR|EXIST)\b.*plain/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a folder that cannot be written is one clear error', () => {
  const dir = tmp();
  try {
    const ro = path.join(dir, 'ro');
    mkdirSync(ro);
    const file = path.join(ro, 'state.json');
    const expected = /cannot write lock file .*ro\/state\.json\.lock: the folder .*ro is not writable \(EACCES\); make it writable/;
    if (process.getuid?.() !== 0) {
      chmodSync(ro, 0o500);
      assert.throws(() => acquireStateLock(file), clearError(expected));
      return;
    }
    // Root ignores permission bits, so the attempt is made by a child running as nobody.
    chmodSync(dir, 0o755);
    chmodSync(ro, 0o555);
    const code = `import(${JSON.stringify(LOCK_MODULE)}).then((m) => {
      try { m.acquireStateLock(${JSON.stringify(file)}); console.log(JSON.stringify({ ok: true })); }
      catch (e) { console.log(JSON.stringify({ name: e.constructor.name, code: e.code, fatal: e.fatal, message: e.message })); }
    });`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { cwd: REPO, uid: 65534, gid: 65534, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { name: string; code: string; fatal: boolean; message: string };
    assert.deepEqual({ name: out.name, code: out.code, fatal: out.fatal }, { name: 'CollectorError', code: 'STATE_IO', fatal: true });
    assert.ok(!out.message.includes('\n'), out.message);
    assert.match(out.message, expected);
    assert.deepEqual(readdirSync(ro), []);
  } finally {
    chmodSync(dir, 0o700);
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A contender: a real process whose command line looks like a collector's, that imports only the
 * lock module, then on each `{"go": stateFile}` line tries to take the lock and answers won/lost,
 * and on `{"release": true}` releases it. The processes are started once and race 40 times: a
 * fresh `node --import tsx` costs ~1 s of CPU per four on this 2-core machine, and the `go` lines
 * written back to back start the four attempts closer together than four process starts would.
 */
const CONTENDER = `
const rl = require('node:readline').createInterface({ input: process.stdin });
import(process.env.LOCK_MODULE).then(({ acquireStateLock }) => {
  let held;
  rl.on('line', (line) => {
    const msg = JSON.parse(line);
    if (msg.go) {
      try { held = acquireStateLock(msg.go); console.log(JSON.stringify({ won: true })); }
      catch (e) { console.log(JSON.stringify({ won: false, code: e.code, message: e.message })); }
    } else {
      if (held) held.release();
      held = undefined;
      console.log(JSON.stringify({ released: true }));
    }
  });
  console.log(JSON.stringify({ ready: true }));
});
`;

class Contender {
  readonly proc: ChildProcess & { pid: number };
  #lines: string[] = [];
  #waiting: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  constructor() {
    this.proc = spawn(process.execPath, ['--import', 'tsx', '-e', CONTENDER, 'm365-forward'], {
      cwd: REPO,
      env: { ...process.env, LOCK_MODULE },
      stdio: ['pipe', 'pipe', 'inherit'],
    }) as ChildProcess & { pid: number };
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      const w = this.#waiting.shift();
      if (w) w.resolve(line);
      else this.#lines.push(line);
    });
    this.proc.once('exit', (code) => {
      for (const w of this.#waiting.splice(0)) w.reject(new Error(`contender ${this.proc.pid} exited (${code})`));
    });
  }
  send(msg: object): void {
    this.proc.stdin!.write(JSON.stringify(msg) + '\n');
  }
  next(): Promise<Record<string, unknown>> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(JSON.parse(line));
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.reject(new Error(`contender ${this.proc.pid} exited`));
    return new Promise((resolve, reject) => this.#waiting.push({ resolve: (l) => resolve(JSON.parse(l)), reject }));
  }
}

test('the race: four collectors on one stale lock, 40 times: exactly one wins each time', async () => {
  const dir = tmp();
  const sleeper = await live('sleep', ['60']);
  const contenders = [0, 1, 2, 3].map(() => new Contender());
  try {
    for (const c of contenders) assert.deepEqual(await c.next(), { ready: true });
    const file = path.join(dir, 'state.json');
    const old = new Date(Date.now() - 60_000);
    // Every kind of stale lock, in turn.
    const seeds = [
      () => formatLock({ pid: deadPid(), startTime: 99 }),
      () => `${deadPid()}\n`,
      () => formatLock({ pid: sleeper.pid, startTime: startTimeOf(sleeper.pid)! }),
      () => formatLock({ pid: contenders[0]!.proc.pid, startTime: startTimeOf(contenders[0]!.proc.pid)! - 1 }),
      () => 'garbage\n',
    ];
    for (let trial = 0; trial < 40; trial++) {
      writeFileSync(`${file}.lock`, seeds[trial % seeds.length]!());
      utimesSync(`${file}.lock`, old, old);
      for (const c of contenders) c.send({ go: file });
      const results = await Promise.all(contenders.map((c) => c.next()));
      const winners = contenders.filter((_, i) => results[i]!.won === true);
      assert.equal(winners.length, 1, `trial ${trial}: ${winners.length} winners: ${JSON.stringify(results)}`);
      const winner = winners[0]!.proc.pid;
      assert.equal(lockOf(file)?.pid, winner, `trial ${trial}: the lock names the winner`);
      for (const r of results.filter((x) => x.won === false)) {
        assert.equal(r.code, 'STATE_IO');
        assert.match(String(r.message), new RegExp(`in use by another m365-forward \\(pid ${winner}\\)`), `trial ${trial}`);
      }
      for (const c of contenders) c.send({ release: true });
      for (const c of contenders) assert.deepEqual(await c.next(), { released: true });
      assert.deepEqual(readdirSync(dir), [], `trial ${trial}: nothing left after release`);
    }
  } finally {
    for (const c of contenders) c.proc.stdin!.end();
    await Promise.all(contenders.map((c) => stop(c.proc)));
    await stop(sleeper);
    rmSync(dir, { recursive: true, force: true });
  }
});
