import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, type ConfigOverrides } from '../config/load.ts';
import { describeError } from '../errors.ts';
import { tokenRoles } from '../auth/token-provider.ts';
import { listSubscriptions } from '../management-api/subscriptions.ts';
import { createTenantRuntime } from '../polling/tenant-runtime.ts';
import { encodeBlob } from '../record/encode.ts';
import { createSink, wireFormat } from '../sink/create-sink.ts';
import { createRouter } from '../sink/route.ts';
import { StateStore } from '../state/state-store.ts';
import { silentLogger } from '../support/logger.ts';
import { EXIT } from './common.ts';

/**
 * `check -c FILE`: each step says ok or what is wrong — config, state, token (granted roles, never
 * the token), subscriptions, clock skew from the API's Date header, and one test record through
 * the output, waiting for its ack. Reads the state file but never writes it.
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
  // The state must be readable, and its folder writable by this user, or the first checkpoint stops the collector.
  try {
    const feeds = new StateStore(config.state.path).load();
    const dir = path.dirname(config.state.path);
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    out(true, 'state', `${config.state.path}: ${existsSync(config.state.path) ? `${feeds.size} feed checkpoint(s)` : 'no checkpoint yet'}, folder writable`);
  } catch (err) {
    out(false, 'state', describeError(err));
    failed = true;
  }
  const signal = AbortSignal.timeout(120_000);
  for (const tenant of config.tenants) {
    const t = createTenantRuntime(tenant, config, { log: silentLogger });
    const name = `tenant ${tenant.name}`;
    try {
      try {
        const token = await t.tokens.getToken();
        const roles = tokenRoles(token);
        const missing = ['ActivityFeed.Read'].filter((r) => !roles.includes(r));
        out(missing.length ? false : true, `${name} token`, `granted roles: ${roles.join(', ') || '(none)'}${missing.length ? ` — missing ${missing.join(', ')} (add the application permission and grant admin consent)` : ''}${!roles.includes('ActivityFeed.ReadDlp') && tenant.contentTypes.includes('DLP.All') ? ' — without ActivityFeed.ReadDlp, DLP.All records lack sensitive-data fields' : ''}`);
        if (missing.length) failed = true;
      } catch (err) {
        out(false, `${name} token`, describeError(err));
        failed = true;
        continue;
      }
      try {
        const subs = await listSubscriptions(t.api, signal);
        const status = tenant.contentTypes.map((ct) => `${ct}=${subs.find((s) => s.contentType === ct)?.status ?? 'none (run starts it)'}`);
        out(true, `${name} subscriptions`, status.join(', '));
      } catch (err) {
        out(false, `${name} subscriptions`, describeError(err));
        failed = true;
      }
      const skew = t.clock.skewMs;
      if (skew !== undefined) {
        const s = Math.round(skew / 1000);
        const bad = Math.abs(s) > 300;
        out(bad ? 'warn' : true, `${name} clock skew`, `local clock is ${Math.abs(s)} s ${s >= 0 ? 'ahead of' : 'behind'} the API${bad ? ' — more than 5 min: the collector works in the API\'s time, but fix NTP' : ''}`);
      }
    } finally {
      t.close();
    }
  }
  const sink = createSink(config, silentLogger);
  try {
    const now = Date.now();
    const record = JSON.stringify({ type: 'm365-forward.check', message: 'test record from m365-forward check', time: new Date(now).toISOString() });
    const enc = encodeBlob(Buffer.from(`[${record}]`), {
      format: wireFormat(config),
      router: createRouter(config.routing.tagTemplate, {}),
      contentType: 'Audit.General',
      fixedTag: config.status.tag,
      fallback: { sec: Math.floor(now / 1000), nsec: 0 },
    });
    const wait = AbortSignal.timeout(config.output.forward.ackTimeoutMs);
    await sink.send(enc.entries, wait).catch((err) => {
      if (wait.aborted) throw new Error(`no ack within ${config.output.forward.ackTimeoutMs} ms${sink.health().lastError ? ` (${sink.health().lastError})` : ''}`);
      throw err;
    });
    out(true, 'output', `${sink.description}: test record on tag ${config.status.tag} ${config.output.type === 'forward' ? 'acknowledged' : 'written'}`);
  } catch (err) {
    out(false, 'output', `${sink.description}: ${describeError(err)}${config.output.type === 'forward' ? ' — is a Fluent Bit forward input listening there?' : ''}`);
    failed = true;
  } finally {
    await sink.close();
  }
  return failed ? EXIT.failed : EXIT.ok;
}
