import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { simulatorConfigTree } from '../../src/config/simulator-config.ts';
import { Collector } from '../../src/polling/collector.ts';
import { ForwardSink } from '../../src/sink/forward-sink.ts';
import { StateStore } from '../../src/state/state-store.ts';
import type { Simulator } from '../../src/simulator/index.ts';
import { silentLogger } from '../../src/support/logger.ts';
import type { Clock } from '../../src/support/clock.ts';

/** A temp folder with the simulator's CA and a config pointing at the simulator and a receiver port. */
export function simConfig(
  sim: Simulator,
  opts: { port: number; spanHours: number; dir?: string; patch?: (tree: Record<string, any>) => void },
): { config: Config; dir: string; cleanup: () => void } {
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'm365-it-'));
  const caFile = path.join(dir, 'ca.pem');
  writeFileSync(caFile, sim.caPem);
  const tree = simulatorConfigTree({ ...sim, caFile }, { spanHours: opts.spanHours, statePath: path.join(dir, 'state.json'), forwardPort: opts.port });
  (tree.output as any).forward.ack_timeout = '5s';
  opts.patch?.(tree);
  const config = parseConfig(tree, path.join(dir, 'config.yaml'));
  return { config, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs one `run --once` in-process with a fresh Collector and Forward sink (as the CLI would). */
export async function runOnce(config: Config, clock?: Clock) {
  const sink = new ForwardSink(config.output.forward, silentLogger);
  const collector = new Collector({ config, sink, store: new StateStore(config.state.path), log: silentLogger, clock });
  try {
    return await collector.runOnce(AbortSignal.timeout(120_000));
  } finally {
    await collector.close();
    await sink.close();
  }
}
