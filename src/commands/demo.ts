import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../config/load.ts';
import type { ContentType } from '../management-api/content-types.ts';
import { simulatorConfigTree } from '../config/simulator-config.ts';
import { Collector } from '../polling/collector.ts';
import { startSimulator, type Simulator } from '../simulator/index.ts';
import { createSink } from '../sink/create-sink.ts';
import { createRouter } from '../sink/route.ts';
import { StateStore } from '../state/state-store.ts';
import { EXIT, StopRequested, abortOnSignals, makeLogger, reportFatal } from './common.ts';
import { GaveUp, watchOnce } from './deadline.ts';
import { simulatorOptions, writeCa } from './simulate.ts';

export interface DemoArgs {
  records: number;
  seed: number;
  late: number;
  span: number;
  output: 'stdout' | 'forward';
  recordFormat?: 'record' | 'devo';
  forwardHost?: string;
  forwardPort?: number;
  logLevel?: string;
}

/**
 * `demo`: the simulator and the collector in one process. Prints every routed record
 * (tag, time, record) as a JSON line, then a summary, and exits 0; with `--output forward` the
 * records go to a Fluent Bit forward input instead (127.0.0.1:24224 unless told otherwise).
 */
export async function demoCommand(a: DemoArgs): Promise<number> {
  const log = makeLogger(a.logLevel ?? 'warn');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-forward-demo-'));
  let sim: Simulator | undefined;
  let collector: Collector | undefined;
  let sink;
  let unwatch = () => {};
  const ac = abortOnSignals(log, () => {}, () => EXIT.interrupted);
  try {
    sim = await startSimulator(simulatorOptions({ port: 0, seed: a.seed, records: a.records, span: a.span, late: a.late }));
    const caFile = writeCa(sim, dir);
    const tree = simulatorConfigTree({ ...sim, caFile }, {
      spanHours: a.span,
      statePath: path.join(dir, 'state.json'),
      output: a.output,
      recordFormat: a.recordFormat,
      forwardHost: a.forwardHost,
      forwardPort: a.forwardPort,
    });
    const config = parseConfig(tree, path.join(dir, 'demo.yaml'));
    sink = createSink(config, log);
    collector = new Collector({ config, sink, store: new StateStore(config.state.path), log });
    // Nothing listening on the forward port: say what to start instead of waiting for ever.
    unwatch = watchOnce(ac, sink, {
      stallLimitMs: 15_000,
      hint: `start a Fluent Bit forward input there first, e.g. \`fluent-bit -c plugin/fluent-bit/try-local.conf\``,
    });
    const s = await collector.runOnce(ac.signal);
    // Summary: what went where, by tag (= Devo table).
    const byTag = new Map<string, number>();
    const router = createRouter(config.routing.tagTemplate, config.routing.workloadTables);
    for (const b of sim.blobs()) {
      for (const r of b.records) {
        const t = router.tagFor(r, b.contentType as ContentType);
        byTag.set(t, (byTag.get(t) ?? 0) + 1);
      }
    }
    const problems = s.errors.length || s.waiting || s.lost || s.deadLettered;
    const lines = [
      '',
      `demo summary: ${s.records} records in ${s.blobs} blobs from ${collector.feeds.length} feeds (simulated tenant ${sim.tenantId}) sent to ${sink.description}, every one ${config.output.type === 'forward' ? 'acknowledged' : 'written'} and checkpointed`,
      ...[...byTag.entries()].sort().map(([t, n]) => `  ${String(n).padStart(6)}  ${t}`),
      `  ${String(collector.feeds.length).padStart(6)}  ${config.status.tag} (status records, one per feed)`,
    ];
    if (problems) lines.push(`problems: ${s.waiting} waiting for retry, ${s.lost} lost, ${s.deadLettered} dead-lettered, errors: ${s.errors.join('; ')}`);
    // The summary goes to stderr: stdout carries only the records (`npm run demo | jq` works).
    process.stderr.write(lines.join('\n') + '\n');
    return problems ? EXIT.failed : EXIT.ok;
  } catch (err) {
    const reason = ac.signal.aborted ? ac.signal.reason : undefined;
    if (reason instanceof GaveUp) {
      process.stderr.write(`m365-forward demo: ${reason.message}\n`);
      return EXIT.failed;
    }
    if (reason instanceof StopRequested) return EXIT.interrupted;
    return reportFatal(err);
  } finally {
    unwatch();
    await collector?.close().catch(() => {});
    await sink?.close();
    await sim?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
