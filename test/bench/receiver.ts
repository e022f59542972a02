/**
 * The receiver every scenario sends to: the real Fluent Bit with a forward input (acks on: in_forward
 * answers every `chunk`, reference forward-fluent-bit-devo.md §2.2) into the `null` output, as issue
 * 7 asks; without a Fluent Bit binary, our own acking receiver in a child process. Either one runs in
 * its own process, so its CPU is measured (processes.ts), and counts the records it took in, so the
 * bench can check that every record delivered arrived.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fluentBitBinary, freePort, recordCounts } from '../helpers/fluent-bit.ts';
import { spawnChild, type Child } from './processes.ts';

/** A running receiver. */
export interface BenchReceiver {
  kind: 'fluent-bit' | 'own';
  /** One line for the bench's output: what receives, and how. */
  description: string;
  port: number;
  pid: number;
  /** Records taken in so far (Fluent Bit: its forward input's `records` metric), undefined if unknown. */
  records(): Promise<number | undefined>;
  stop(): Promise<void>;
}

/** Starts Fluent Bit (`-o null`) or, without the binary, our own receiver; `dir` holds its config. */
export async function startReceiver(dir: string): Promise<BenchReceiver> {
  const binary = fluentBitBinary();
  return binary ? startFluentBitNull(binary, dir) : startOwnReceiver();
}

/** Fluent Bit's version line ("Fluent Bit v5.1.1"), or the binary's path if it does not say. */
function fluentBitVersion(binary: string): string {
  try {
    return execFileSync(binary, ['--version']).toString().split('\n')[0]!.trim();
  } catch {
    return binary;
  }
}

async function startFluentBitNull(binary: string, dir: string): Promise<BenchReceiver> {
  const [port, httpPort] = [await freePort(), await freePort()];
  // Classic config rather than -i/-o flags only so the monitoring server (the record count) binds
  // to loopback: `-H` alone listens on 0.0.0.0. Flush 1 is Fluent Bit's default.
  const config = [
    '[SERVICE]',
    '    Flush        1',
    '    Log_Level    warn',
    '    HTTP_Server  On',
    '    HTTP_Listen  127.0.0.1',
    `    HTTP_Port    ${httpPort}`,
    '[INPUT]',
    '    Name         forward',
    '    Listen       127.0.0.1',
    `    Port         ${port}`,
    '[OUTPUT]',
    '    Name         null',
    '    Match        *',
    '',
  ].join('\n');
  const file = path.join(dir, 'fluent-bit.conf');
  writeFileSync(file, config);
  const child = spawnChild(binary, ['-c', file], { cwd: dir });
  await waitListening(child, port, 'Fluent Bit');
  // The metrics endpoint answers an empty body until its first snapshot (test/helpers/fluent-bit.ts).
  const records = async () => (await recordCounts(httpPort))?.in;
  return {
    kind: 'fluent-bit',
    description: `${fluentBitVersion(binary)} (${binary}): forward input on 127.0.0.1 with acks → null output (Flush 1)`,
    port,
    pid: child.pid,
    records,
    stop: () => child.stop(5000),
  };
}

async function startOwnReceiver(): Promise<BenchReceiver> {
  const child = spawnChild(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'receiver-child.ts')], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const deadline = Date.now() + 30_000;
  while (!child.stdout().includes('\n')) {
    if (child.proc.exitCode !== null || Date.now() > deadline) throw new Error(`the fallback receiver did not start: ${child.stderr().trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const { port } = JSON.parse(child.stdout().split('\n')[0]!) as { port: number };
  const records = () =>
    new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 5000);
      child.proc.once('message', (m) => {
        clearTimeout(timer);
        resolve((m as { records: number }).records);
      });
      child.proc.send('count');
    });
  return {
    kind: 'own',
    description: 'NO Fluent Bit binary (set FLUENT_BIT or put ../shared/tools/fluent-bit/fluent-bit in place): our own acking Forward receiver (test/helpers/forward-receiver.ts) in a child process instead; figures are not comparable with the targets',
    port,
    pid: child.pid,
    records,
    stop: () => child.stop(5000),
  };
}

/** Polls a TCP connect until the receiver accepts (Fluent Bit: 23-55 ms after spawn, test/helpers/fluent-bit.ts). */
async function waitListening(child: Child, port: number, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => (s.destroy(), resolve(false)));
    });
    if (ok) return;
    if (child.proc.exitCode !== null) throw new Error(`${what} exited before it listened: ${child.stderr().trim().split('\n').slice(-5).join(' | ')}`);
    if (Date.now() > deadline) throw new Error(`${what} did not listen on 127.0.0.1:${port} within 20 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Waits until the receiver has taken in at least `expected` records, or its count stops moving for
 * 3 s (then what arrived is what arrived), at most 30 s; returns the count (undefined: unknown).
 */
export async function settle(rx: BenchReceiver, expected: number): Promise<number | undefined> {
  const deadline = Date.now() + 30_000;
  let last: number | undefined;
  let stableSince = Date.now();
  for (;;) {
    const n = await rx.records();
    if (n !== undefined && n >= expected) return n;
    if (n !== last) {
      last = n;
      stableSince = Date.now();
    }
    if (Date.now() - stableSince > 3000 || Date.now() > deadline) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
}
