import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../config/load.ts';
import { CollectorError, describeError } from '../errors.ts';
import type { ContentType } from '../management-api/content-types.ts';
import { listSubscriptions, startSubscription, stopSubscription } from '../management-api/subscriptions.ts';
import type { FeedCheckpoint } from '../polling/checkpoint.ts';
import { createTenantRuntime } from '../polling/tenant-runtime.ts';
import { StateStore, feedKey } from '../state/state-store.ts';
import { silentLogger } from '../support/logger.ts';
import { EXIT, reportFatal } from './common.ts';

/** `subscriptions list|start|stop -c FILE [--content-type CT]`: talks to the API only, never to the state. */
export async function subscriptionsCommand(action: 'list' | 'start' | 'stop', args: { config: string; contentType?: string }): Promise<number> {
  try {
    const config = loadConfig(args.config);
    const signal = AbortSignal.timeout(120_000);
    let failed = false;
    for (const tenant of config.tenants) {
      const t = createTenantRuntime(tenant, config, { log: silentLogger });
      try {
        const types = (args.contentType ? [args.contentType] : tenant.contentTypes) as ContentType[];
        if (action === 'list') {
          const subs = await listSubscriptions(t.api, signal);
          for (const s of subs) process.stdout.write(`${tenant.name}\t${s.contentType}\t${s.status}${s.webhook ? '\twebhook' : ''}\n`);
          if (subs.length === 0) process.stdout.write(`${tenant.name}\t(no subscriptions)\n`);
          continue;
        }
        for (const ct of types) {
          try {
            if (action === 'start') {
              const r = await startSubscription(t.api, ct, signal);
              process.stdout.write(`${tenant.name}\t${ct}\t${r === 'started' ? 'started' : 'already enabled'}\n`);
            } else {
              await stopSubscription(t.api, ct, signal);
              process.stdout.write(`${tenant.name}\t${ct}\tstopped (content from before a restart cannot be retrieved)\n`);
            }
          } catch (err) {
            process.stdout.write(`${tenant.name}\t${ct}\tFAILED: ${describeError(err)}\n`);
            failed = true;
          }
        }
      } finally {
        t.close();
      }
    }
    return failed ? EXIT.failed : EXIT.ok;
  } catch (err) {
    return reportFatal(err);
  }
}

/** `state show -c FILE`: the checkpoint of every feed, for a person (read only; safe while `run` runs). */
/**
 * `state show -c FILE` (every configured feed, and feeds the config no longer has) or
 * `state show --state PATH` (every feed of that state file, no config needed: e.g. a copy taken
 * from a server). Reads only; safe while a collector runs (it may show a moment-old journal).
 */
export function stateShowCommand(args: { config?: string; state?: string }): number {
  try {
    if (!args.config && !args.state) throw new CollectorError('CONFIG_INVALID', 'state show needs -c FILE (the collector config) or --state PATH (a state file)');
    const config = args.config ? loadConfig(args.config, args.state ? { statePath: args.state } : {}) : undefined;
    const file = config?.state.path ?? path.resolve(args.state!);
    if (!config && !existsSync(file)) throw new CollectorError('CONFIG_INVALID', `no state file at ${file}: give the state.path of a collector (default ./state/m365-forward.state.json)`);
    const feeds = new StateStore(file).load();
    const now = Date.now();
    const iso = (ms: number) => new Date(ms).toISOString();
    process.stdout.write(`state file ${file}\n`);
    const show = (key: string, f: FeedCheckpoint) => {
      const s = f.s;
      process.stdout.write(
        `${key}: cursor ${iso(s.cursor)} (lag ${Math.round((now - s.cursor) / 60_000)} min by the local clock), coverage from ${iso(s.origin)}, ` +
          `last sweep ${s.lastSweepAt ? iso(s.lastSweepAt) : 'never'}; ${s.blobsDelivered} blobs / ${s.recordsDelivered} records delivered, ` +
          `${s.deadLettered} dead-lettered, ${s.lateBlobs} late blobs (max ${s.maxLatenessSeconds} s late), ${f.done.size} done ids kept, ` +
          `retry queue ${f.retry.size}, lost ${s.lost}, gaps ${s.gaps}${s.lastError ? `, last error: ${s.lastError}` : ''}\n`,
      );
      for (const r of f.retry.values()) {
        process.stdout.write(`    retry ${r.contentId}: ${r.attempts} attempt(s), next ${iso(r.nextAttemptAt)}, expires ${r.contentExpiration || 'unknown'}, last error: ${r.lastError}\n`);
      }
    };
    if (!config) {
      if (feeds.size === 0) process.stdout.write('no feeds yet\n');
      for (const [key, f] of feeds) show(key, f);
      return EXIT.ok;
    }
    const configured = new Set<string>();
    for (const t of config.tenants) {
      for (const ct of t.contentTypes) {
        const key = feedKey(t.name, ct);
        configured.add(key);
        const f = feeds.get(key);
        if (f) show(key, f);
        else process.stdout.write(`${key}: no checkpoint yet (first run starts ${config.polling.initialLookbackMs / 3_600_000} h back)\n`);
      }
    }
    for (const [key, f] of feeds) {
      if (configured.has(key)) continue;
      process.stdout.write(`${key}: NOT IN THE CONFIG any more (the next run drops it from the state): cursor ${iso(f.s.cursor)}, retry queue ${f.retry.size}${f.retry.size ? ' (never delivered: put the feed back in the config to fetch them)' : ''}\n`);
    }
    return EXIT.ok;
  } catch (err) {
    return reportFatal(err);
  }
}
