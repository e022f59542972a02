/**
 * The bench's processes: every child and temp folder is tracked and removed when the bench ends,
 * fails or is interrupted (SIGINT/SIGTERM), and each process's CPU and memory are read from Linux's
 * /proc or, for a process that exits on its own, from its own `process.resourceUsage()` at exit.
 *
 * How CPU and memory are measured (documented in the bench's output too):
 * - A process that lives across runs (simulator, Fluent Bit, our fallback receiver): utime + stime
 *   of /proc/<pid>/stat (clock ticks, `getconf CLK_TCK`) read before and after each run; the
 *   difference is its CPU during that run.
 * - A process that exits at the end of its run (the collector's `run --once`, the floor): it is
 *   started with `--import exit-usage.ts`, which writes its `process.resourceUsage()` (user + system
 *   CPU, maxRSS) and /proc/self/status VmHWM to a file in its 'exit' event. A process killed before
 *   that (a timeout) falls back to the last /proc sample, taken every 250 ms.
 * - Peak RSS is VmHWM (the kernel's high-water mark of resident memory), in MB of 10^6 bytes.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
// @ts-expect-error: plain JavaScript module (src/bundle.mjs), no declarations
import { bundleIsCurrent, bundlePath } from '../../src/bundle.mjs';

/** The repository (test/bench/..). */
export const repoRoot = path.resolve(import.meta.dirname, '..', '..');
/** The CLI's TypeScript entry (through tsx: the simulator, whose start-up is not measured). */
export const cliPath = path.join(repoRoot, 'src', 'cli.ts');
/** The `m365-forward` bin an operator runs (package.json): the bundle when it is current. */
export const binPath = path.join(repoRoot, 'src', 'bin.mjs');
/** The preload that reports a child's own CPU and peak RSS at exit. */
export const exitUsageImport = ['--import', pathToFileURL(path.join(import.meta.dirname, 'exit-usage.mjs')).href];

/**
 * Builds the CLI's bundle (`npm run build`) and fails unless the bin will run it: the collector is
 * measured as it is installed, not through tsx's transpile-at-start.
 */
export function buildCliBundle(): string {
  execFileSync(process.execPath, [path.join(repoRoot, 'src', 'build.mjs')], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (!bundleIsCurrent()) throw new Error('npm run build made no current src/.build/cli.mjs: the collector would run through tsx');
  return bundlePath;
}

/**
 * Throws when a source file changed since the bench built the bundle: the bin would then run the
 * sources through tsx (45 MB more, a slower start) and the figure would not be the product's.
 */
export function assertBundleCurrent(): void {
  if (!bundleIsCurrent()) throw new Error('a file under src/ changed while the bench ran: the bin ran the sources through tsx, not the bundle; run the bench again without editing');
}

/**
 * Bundles a bench program (TypeScript) into one plain module in `dir`, so it starts as the
 * collector's bundle does and neither pays tsx at start.
 */
export async function bundleProgram(entry: string, dir: string): Promise<string> {
  const esbuild = await import('esbuild');
  const outfile = path.join(dir, `${path.basename(entry, '.ts')}.mjs`);
  await esbuild.build({
    entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return outfile;
}

let clockTicks: number | undefined;
/** Clock ticks per second of /proc/<pid>/stat (CLK_TCK; 100 on Linux unless configured otherwise). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU seconds a live process has used so far, from /proc/<pid>/stat; undefined once it is gone. */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after "pid (comm) ".
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/** Peak resident memory (VmHWM) of a live process in MB; undefined once it is gone. */
export function peakRssMbOf(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? (Number(m[1]) * 1024) / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Tracking and cleanup.

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let installed = false;
let interrupted: NodeJS.Signals | undefined;

/** The signal that interrupted the bench, if one did: every scenario stops at its next step. */
export function interruptedBy(): NodeJS.Signals | undefined {
  return interrupted;
}

function killAllNow(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

/**
 * Installs the exit and signal guards once: on SIGINT/SIGTERM every child gets SIGTERM (then
 * SIGKILL after 3 s), temp folders are removed, and the bench exits 130 (143). The children share
 * the terminal's process group, so a Ctrl-C reaches them directly as well.
 */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = signal;
      process.stderr.write(`\nbench: ${signal}: stopping every process it started and removing its temp folders\n`);
      for (const c of children) c.kill('SIGTERM');
      const deadline = setTimeout(() => {
        killAllNow();
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }, 3000);
      const poll = setInterval(() => {
        if ([...children].every((c) => c.exitCode !== null || c.signalCode !== null)) {
          clearInterval(poll);
          clearTimeout(deadline);
          killAllNow();
          process.exit(signal === 'SIGINT' ? 130 : 143);
        }
      }, 50);
    });
  }
}

/** A temp folder removed when the bench ends (or by `remove()`). */
export function tempDir(prefix: string): { path: string; remove(): void } {
  const p = mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.add(p);
  return {
    path: p,
    remove() {
      rmSync(p, { recursive: true, force: true });
      dirs.delete(p);
    },
  };
}

/** A tracked child with its output kept (stdout whole, stderr's last 64 KiB) and its exit awaited. */
export interface Child {
  proc: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, SIGKILL after `graceMs`; resolves once it is gone. */
  stop(graceMs?: number): Promise<void>;
}

const STDERR_KEEP = 64 * 1024;

/** Spawns a tracked child (removed from tracking when it exits). */
export function spawnChild(command: string, args: string[], opts: SpawnOptions = {}): Child {
  installCleanup();
  const proc = spawn(command, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  if (proc.pid === undefined) throw new Error(`could not start ${command}`);
  children.add(proc);
  let out = '';
  let err = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    if (err.length > 2 * STDERR_KEEP) err = err.slice(-STDERR_KEEP);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('error', () => resolve({ code: null, signal: null }));
    proc.once('close', (code, signal) => resolve({ code, signal }));
  }).finally(() => children.delete(proc));
  return {
    proc,
    pid: proc.pid,
    stdout: () => out,
    stderr: () => err,
    exited,
    async stop(graceMs = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return void (await exited);
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** What a measured child used: wall time from spawn to exit, its own CPU, its peak RSS. */
export interface MeasuredRun {
  wallSeconds: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  cpuSeconds: number;
  peakRssMb: number;
  /** 'exit-usage' when the child reported itself, '/proc' when only the last sample was left. */
  source: 'exit-usage' | '/proc';
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs `node <preload> <script> <args>` (with `--import tsx` first for a .ts script) to completion,
 * killing it after `timeoutMs`, and returns what it used. `usageFile` must be in a folder of the caller's.
 */
export async function measureNode(script: string, scriptArgs: string[], opts: { usageFile: string; timeoutMs: number; env?: NodeJS.ProcessEnv }): Promise<MeasuredRun> {
  rmSync(opts.usageFile, { force: true });
  const t0 = performance.now();
  const env = { ...process.env, ...opts.env, M365_BENCH_USAGE_FILE: opts.usageFile };
  // The bin runs as an operator runs it: executed, so its shebang's Node flags apply; the
  // preload comes through NODE_OPTIONS then.
  const child =
    script === binPath
      ? spawnChild(script, scriptArgs, { env: { ...env, NODE_OPTIONS: [process.env.NODE_OPTIONS, ...exitUsageImport].filter(Boolean).join(' ') } })
      : spawnChild(process.execPath, [...(script.endsWith('.ts') ? ['--import', 'tsx'] : []), ...exitUsageImport, script, ...scriptArgs], { env });
  let lastCpu = 0;
  let lastRss = 0;
  const sampler = setInterval(() => {
    lastCpu = cpuSecondsOf(child.pid) ?? lastCpu;
    lastRss = peakRssMbOf(child.pid) ?? lastRss;
  }, 250);
  let timedOut = false;
  const killer = setTimeout(() => {
    timedOut = true;
    void child.stop(5000);
  }, opts.timeoutMs);
  const { code, signal } = await child.exited;
  const wallSeconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  clearTimeout(killer);
  let cpuSeconds = lastCpu;
  let peakRssMb = lastRss;
  let source: MeasuredRun['source'] = '/proc';
  if (existsSync(opts.usageFile)) {
    const u = JSON.parse(readFileSync(opts.usageFile, 'utf8')) as { cpuSeconds: number; maxRssKiB: number; vmHwmKiB?: number };
    cpuSeconds = u.cpuSeconds;
    peakRssMb = ((u.vmHwmKiB ?? u.maxRssKiB) * 1024) / 1e6;
    source = 'exit-usage';
    rmSync(opts.usageFile, { force: true });
  }
  return { wallSeconds, code, signal, cpuSeconds, peakRssMb, source, stdout: child.stdout(), stderr: child.stderr(), timedOut };
}

/**
 * Starts a long-lived node child that prints one JSON line on stdout when ready, and resolves with
 * that line. Fails with the child's stderr if it exits first or is not ready within `timeoutMs`.
 */
export async function startReadyChild(nodeArgs: string[], what: string, timeoutMs: number): Promise<{ child: Child; ready: Record<string, any> }> {
  const child = spawnChild(process.execPath, nodeArgs);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const nl = child.stdout().indexOf('\n');
    if (nl >= 0) return { child, ready: JSON.parse(child.stdout().slice(0, nl)) as Record<string, any> };
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      throw new Error(`${what} exited before it was ready: ${child.stderr().trim().split('\n').slice(-5).join(' | ')}`);
    }
    if (interruptedBy()) throw new Error(`interrupted while starting ${what}`);
    if (Date.now() > deadline) {
      await child.stop();
      throw new Error(`${what} was not ready within ${timeoutMs / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The JSON line starting with `{"stats":` a simulator printed on exit, if any. */
export function statsLine(stdout: string): Record<string, any> | undefined {
  const line = stdout.split('\n').find((l) => l.startsWith('{"stats":'));
  return line ? (JSON.parse(line) as { stats: Record<string, any> }).stats : undefined;
}
