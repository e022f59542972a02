import { loadConfig } from '../config/load.ts';
import { describeError } from '../errors.ts';
import type { ContentType } from '../management-api/content-types.ts';
import { listSubscriptions, startSubscription, stopSubscription } from '../management-api/subscriptions.ts';
import { Collector } from '../polling/collector.ts';
import { StdoutSink } from '../sink/stdout-sink.ts';
import { StateStore, feedKey } from '../state/state-store.ts';
import { silentLogger } from '../support/logger.ts';
import { EXIT, reportFatal } from './common.ts';

/** `subscriptions list|start|stop -c FILE [--content-type CT]`. */
export async function subscriptionsCommand(action: 'list' | 'start' | 'stop', args: { config: string; contentType?: string }): Promise<number> {
  try {
    const config = loadConfig(args.config);
    // Subscriptions have nothing to do with the checkpoint: neither read nor write the state file.
    const store = new StateStore(config.state.path);
    store.load = () => ({ version: 1, feeds: {} });
    store.save = async () => {};
    const collector = new Collector({ config, sink: new StdoutSink(), store, log: silentLogger });
    const signal = AbortSignal.timeout(120_000);
    let failed = false;
    try {
      for (const t of collector.tenants) {
        const types = (args.contentType ? [args.contentType] : t.tenant.contentTypes) as ContentType[];
        if (action === 'list') {
          const subs = await listSubscriptions(t.api, signal);
          for (const s of subs) process.stdout.write(`${t.tenant.name}\t${s.contentType}\t${s.status}${s.webhook ? '\twebhook' : ''}\n`);
          if (subs.length === 0) process.stdout.write(`${t.tenant.name}\t(no subscriptions)\n`);
          continue;
        }
        for (const ct of types) {
          try {
            if (action === 'start') {
              const r = await startSubscription(t.api, ct, signal);
              process.stdout.write(`${t.tenant.name}\t${ct}\t${r === 'started' ? 'started' : 'already enabled'}\n`);
            } else {
              await stopSubscription(t.api, ct, signal);
              process.stdout.write(`${t.tenant.name}\t${ct}\tstopped (content from before a restart cannot be retrieved)\n`);
            }
          } catch (err) {
            process.stdout.write(`${t.tenant.name}\t${ct}\tFAILED: ${describeError(err)}\n`);
            failed = true;
          }
        }
      }
    } finally {
      collector.close();
    }
    return failed ? EXIT.failed : EXIT.ok;
  } catch (err) {
    return reportFatal(err);
  }
}

/** `state show -c FILE`: the checkpoint of every configured feed, for a person. */
export function stateShowCommand(args: { config: string }): number {
  try {
    const config = loadConfig(args.config);
    const state = new StateStore(config.state.path).load();
    const now = Date.now();
    process.stdout.write(`state file ${config.state.path}\n`);
    for (const t of config.tenants) {
      for (const ct of t.contentTypes) {
        const f = state.feeds[feedKey(t.name, ct)];
        if (!f) {
          process.stdout.write(`${t.name}/${ct}: no checkpoint yet (first run starts ${config.polling.initialLookbackMs / 3_600_000} h back)\n`);
          continue;
        }
        process.stdout.write(
          `${t.name}/${ct}: cursor ${new Date(f.cursor).toISOString()} (lag ${Math.round((now - f.cursor) / 60_000)} min), ` +
            `${f.blobsDelivered} blobs / ${f.recordsDelivered} records delivered, ${Object.keys(f.done).length} done ids in the overlap, ` +
            `retry queue ${f.retry.length}, lost ${f.lost}${f.lastError ? `, last error: ${f.lastError}` : ''}\n`,
        );
        for (const r of f.retry) {
          process.stdout.write(`    retry ${r.contentId}: ${r.attempts} attempt(s), next ${new Date(r.nextAttemptAt).toISOString()}, expires ${r.contentExpiration}, last error: ${r.lastError}\n`);
        }
      }
    }
    return EXIT.ok;
  } catch (err) {
    return reportFatal(err);
  }
}
