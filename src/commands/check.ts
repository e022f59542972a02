import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, type ConfigOverrides } from '../config/load.ts';
import { describeError } from '../errors.ts';
import { tokenRoles } from '../auth/token-provider.ts';
import { listSubscriptions } from '../management-api/subscriptions.ts';
import { Collector } from '../polling/collector.ts';
import { createSink } from '../sink/create-sink.ts';
import { StateStore } from '../state/state-store.ts';
import { silentLogger } from '../support/logger.ts';
import { EXIT } from './common.ts';

/**
 * `check -c FILE`: each step says ok or what is wrong — config, token (granted roles, never the
 * token), subscriptions, clock skew from the API's Date header, and one test record through the
 * Forward output, waiting for its ack. Reads the state file but never writes it.
 */
export async function checkCommand(args: ConfigOverrides & { config: string }): Promise<number> {
  const out = (ok: boolean | 'warn', what: string, detail = '') =>
    process.stdout.write(`${ok === true ? 'ok  ' : ok === 'warn' ? 'warn' : 'FAIL'}  ${what}${detail ? ': ' + detail : ''}\n`);
  let config;
  try {
    config = loadConfig(args.config, args);
  } catch (err) {
    out(false, 'config', describeError(err));
    return EXIT.config;
  }
  out(true, 'config', `${config.sourceFile}: ${config.tenants.length} tenant(s), output ${config.output.type}, state ${config.state.path}`);
  let failed = false;
  const sink = createSink(config, silentLogger);
  const store = new StateStore(config.state.path);
  // Never write the state from `check`: a store that refuses to save.
  store.save = async () => {};
  let collector: Collector | undefined;
  try {
    collector = new Collector({ config, sink, store, log: silentLogger });
  } catch (err) {
    out(false, 'state', describeError(err));
    await sink.close();
    return EXIT.failed;
  }
  // The state folder must be writable by this user, or the first checkpoint stops the collector.
  try {
    const dir = path.dirname(config.state.path);
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    out(true, 'state', `${config.state.path}: ${existsSync(config.state.path) ? `${Object.keys(collector.state.feeds).length} feed checkpoint(s)` : 'no checkpoint yet'}, folder writable`);
  } catch (err) {
    out(false, 'state', `${config.state.path}: folder not writable (${(err as Error).message})`);
    failed = true;
  }
  const signal = AbortSignal.timeout(120_000);
  for (const t of collector.tenants) {
    const name = `tenant ${t.tenant.name}`;
    try {
      const token = await t.tokens.getToken();
      const roles = tokenRoles(token);
      const missing = ['ActivityFeed.Read'].filter((r) => !roles.includes(r));
      out(missing.length ? false : true, `${name} token`, `granted roles: ${roles.join(', ') || '(none)'}${missing.length ? ` — missing ${missing.join(', ')} (add the application permission and grant admin consent)` : ''}${!roles.includes('ActivityFeed.ReadDlp') && t.tenant.contentTypes.includes('DLP.All') ? ' — without ActivityFeed.ReadDlp, DLP.All records lack sensitive-data fields' : ''}`);
      if (missing.length) failed = true;
    } catch (err) {
      out(false, `${name} token`, describeError(err));
      failed = true;
      continue;
    }
    try {
      const subs = await listSubscriptions(t.api, signal);
      const status = t.tenant.contentTypes.map((ct) => `${ct}=${subs.find((s) => s.contentType === ct)?.status ?? 'none (run starts it)'}`);
      out(true, `${name} subscriptions`, status.join(', '));
    } catch (err) {
      out(false, `${name} subscriptions`, describeError(err));
      failed = true;
    }
    if (t.skewMs !== undefined) {
      const s = Math.round(t.skewMs / 1000);
      const bad = Math.abs(s) > 300;
      out(bad ? 'warn' : true, `${name} clock skew`, `local clock is ${Math.abs(s)} s ${s >= 0 ? 'ahead of' : 'behind'} the API${bad ? ' — more than 5 min: listing windows may be rejected (AF20055); fix NTP' : ''}`);
    }
  }
  try {
    await sink.probe({ tag: config.status.tag, timeMs: Date.now(), record: { type: 'm365-forward.check', message: 'test record from m365-forward check' } }, config.output.forward.ackTimeoutMs);
    out(true, 'output', `${sink.description}: test record on tag ${config.status.tag} ${config.output.type === 'forward' ? 'acknowledged' : 'written'}`);
  } catch (err) {
    out(false, 'output', `${sink.description}: ${describeError(err)}${config.output.type === 'forward' ? ' — is a Fluent Bit forward input listening there?' : ''}`);
    failed = true;
  } finally {
    collector.close();
    await sink.close();
  }
  return failed ? EXIT.failed : EXIT.ok;
}
