import { loadConfig, type ConfigOverrides } from '../config/load.ts';
import { Collector } from '../polling/collector.ts';
import { createSink } from '../sink/create-sink.ts';
import { StateStore } from '../state/state-store.ts';
import { EXIT, abortOnSignals, makeLogger, reportFatal } from './common.ts';

export interface RunArgs extends ConfigOverrides {
  config: string;
  once: boolean;
  logLevel?: string;
}

/** `run -c FILE [--once]`: poll for ever, or collect what is there now and exit. */
export async function runCommand(args: RunArgs): Promise<number> {
  const log = makeLogger(args.logLevel);
  let config;
  try {
    config = loadConfig(args.config, args);
  } catch (err) {
    return reportFatal(err);
  }
  const sink = createSink(config, log);
  let collector: Collector | undefined;
  let unlock = () => {};
  const ac = abortOnSignals(log);
  try {
    const store = new StateStore(config.state.path);
    store.lock();
    unlock = () => store.unlock();
    collector = new Collector({ config, sink, store, log });
    log.info('starting', { tenants: config.tenants.length, feeds: collector.feeds.length, output: sink.description, state: config.state.path, once: args.once });
    if (args.once) {
      const s = await collector.runOnce(ac.signal);
      const line = `delivered ${s.records} records in ${s.blobs} blobs from ${collector.feeds.length} feeds to ${sink.description}; checkpoint saved to ${config.state.path}`;
      // Blobs parked in this run or earlier ones still waiting: not everything available was delivered.
      const waiting = collector.feeds.reduce((n, f) => n + f.state.retry.length, 0);
      if (s.errors.length || s.lost || waiting) {
        process.stderr.write(
          `m365-forward: ${line}, but ${waiting} blob(s) wait in the retry queue (see state show), ${s.lost} lost, ${s.errors.length} feed error(s)` +
            (s.errors.length ? `:\n${s.errors.map((e) => `  - ${e}`).join('\n')}` : '') +
            '\n',
        );
        return EXIT.failed;
      }
      process.stderr.write(`m365-forward: ${line}\n`);
      return EXIT.ok;
    }
    await collector.runForever(ac.signal);
    return EXIT.ok;
  } catch (err) {
    if (ac.signal.aborted) {
      // A service stopped by SIGTERM ends normally; an interrupted --once did not finish its job.
      if (!args.once) return EXIT.ok;
      process.stderr.write('m365-forward: interrupted; what was acknowledged is checkpointed, the rest is sent next time\n');
      return EXIT.interrupted;
    }
    return reportFatal(err);
  } finally {
    collector?.close();
    await sink.close();
    unlock();
  }
}
