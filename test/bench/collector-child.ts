/**
 * Bench child: runs one `run --once` in its own process (so its memory is measured alone) and
 * prints {seconds, records, blobs, maxRssMiB} as one JSON line.
 */
import { loadConfig } from '../../src/config/load.ts';
import { Collector } from '../../src/polling/collector.ts';
import { ForwardSink } from '../../src/sink/forward-sink.ts';
import { StateStore } from '../../src/state/state-store.ts';
import { silentLogger } from '../../src/support/logger.ts';

const config = loadConfig(process.argv[2]!);
const sink = new ForwardSink(config.output.forward, silentLogger);
const collector = new Collector({ config, sink, store: new StateStore(config.state.path), log: silentLogger });
const t0 = performance.now();
const s = await collector.runOnce(AbortSignal.timeout(600_000));
const seconds = (performance.now() - t0) / 1000;
await collector.close();
await sink.close();
process.stdout.write(JSON.stringify({ seconds, records: s.records, blobs: s.blobs, errors: s.errors, maxRssMiB: process.resourceUsage().maxRSS / 1024, cpuSeconds: (process.resourceUsage().userCPUTime + process.resourceUsage().systemCPUTime) / 1e6 }) + '\n');
