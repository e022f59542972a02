import https from 'node:https';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { createTokenProvider, type TokenProvider } from '../auth/token-provider.ts';
import { DEFAULTS, type Config, type ProxyConfig, type TenantConfig } from '../config/schema.ts';
import { CollectorError, describeError } from '../errors.ts';
import { ApiClient } from '../management-api/api-client.ts';
import { listSubscriptions } from '../management-api/subscriptions.ts';
import { BACKOFF, backoffDelay } from './backoff.ts';
import { RequestBudget } from './request-budget.ts';
import { ApiClock } from '../support/api-clock.ts';
import { systemClock, type Clock } from '../support/clock.ts';
import type { Logger } from '../support/logger.ts';
import { sleep } from '../support/sleep.ts';
import { createProxyAgent, describeProxy, proxyFor } from '../support/proxy.ts';

/**
 * What talking to one tenant takes: its own HTTPS connection pool (so one tenant's slow downloads
 * never hold another's sockets), its API clock, its token provider and its API client. Built the
 * same way by the collector and by the commands that only call the API (check, subscriptions).
 */
export interface TenantRuntime {
  tenant: TenantConfig;
  clock: ApiClock;
  tokens: TokenProvider;
  api: ApiClient;
  agent: https.Agent;
  close(): void;
}

/**
 * The HTTPS agent for the Microsoft side (MSAL and the API), so the custom CA (`api.ca_file`: a
 * TLS-inspecting proxy's CA, or the simulator's) and the proxy (`api.proxy` or HTTPS_PROXY) apply
 * to both: Graylog's token call once ignored the proxy its API calls used (reference/peers.md,
 * pain 18). The extra CA is added to Node's bundled roots, not put in their place. With a proxy,
 * the agent sends each request either through it or, for a host in its NO_PROXY exceptions,
 * directly (src/support/proxy.ts).
 */
/**
 * One secure context per set of extra CAs, shared by every tenant that trusts the same ones: each
 * holds Node's ~150 roots parsed, about a megabyte, and 20 tenants with one api.ca_file built 20
 * (issue 7 bench, scenario 5). Contexts are not changed after they are made, so sharing is safe.
 */
const secureContexts = new Map<string, tls.SecureContext>();
function sharedSecureContext(extraPem: string): tls.SecureContext {
  let ctx = secureContexts.get(extraPem);
  if (!ctx) {
    ctx = tls.createSecureContext({ ca: [...tls.rootCertificates, extraPem] });
    secureContexts.set(extraPem, ctx);
  }
  return ctx;
}

export function createHttpsAgent(opts: { caFile?: string; caPem?: string; maxSockets: number; proxy?: ProxyConfig; timeoutMs?: number }): https.Agent {
  const extra = [opts.caPem, opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined].filter((x): x is string => !!x);
  // A secure context built once, not a `ca` option: the agent keys its socket pool by
  // concatenating every `ca` string for each request, which with Node's ~150 roots cost a third
  // of the collector's CPU. The proxy's tunnels use this same context (createProxyAgent).
  const secureContext = extra.length ? sharedSecureContext(extra.join('\n')) : undefined;
  const direct = new https.Agent({ keepAlive: true, maxSockets: opts.maxSockets, secureContext });
  if (!opts.proxy) return direct;
  return createProxyAgent({ proxy: opts.proxy, direct, secureContext, maxSockets: opts.maxSockets, timeoutMs: opts.timeoutMs ?? DEFAULTS.requestTimeoutMs });
}

/** One line for the log: which road the token calls and the API calls of a tenant take. */
function proxyRoutes(tenant: TenantConfig, proxy: ProxyConfig): Record<string, string> {
  const road = (url: string) => (proxyFor(proxy, url) ? 'proxy' : `direct (${proxy.noProxySource ?? 'NO_PROXY'})`);
  return { proxy: describeProxy(proxy), token: road(tenant.loginUrl), api: road(tenant.apiUrl) };
}

export function createTenantRuntime(
  tenant: TenantConfig,
  config: Config,
  opts: { log: Logger; clock?: Clock; monotonic?: Clock; extraCaPem?: string },
): TenantRuntime {
  // A test's clock moves time for both sides at once: it is also the monotonic source then,
  // unless the test wants a local clock that jumps on its own.
  const clock = new ApiClock(opts.clock ?? systemClock, opts.monotonic ?? opts.clock);
  // Downloads at once, plus listing, token and subscription calls beside them.
  const proxy = config.api.proxy;
  const agent = createHttpsAgent({ caFile: config.api.caFile, caPem: opts.extraCaPem, maxSockets: config.polling.concurrency + 4, proxy, timeoutMs: config.polling.requestTimeoutMs });
  if (proxy) opts.log.info('proxy for the calls to Microsoft', { tenant: tenant.name, ...proxyRoutes(tenant, proxy) });
  const tokens = createTokenProvider(tenant, { agent, timeoutMs: config.polling.requestTimeoutMs, clock });
  const api = new ApiClient({
    apiUrl: tenant.apiUrl,
    tenantId: tenant.tenantId,
    publisherIdentifier: tenant.publisherIdentifier,
    tokens,
    agent,
    timeoutMs: config.polling.requestTimeoutMs,
    maxAttempts: config.polling.maxAttempts,
    log: opts.log.child({ tenant: tenant.name }),
    clock,
    budget: new RequestBudget(tenant.maxRequestsPerMinute),
  });
  return { tenant, clock, tokens, api, agent, close: () => agent.destroy() };
}

/**
 * A tenant's start: its first token (wrong credentials fail here, before anything is listed or
 * sent) and a listing call, which also reads the API's clock from its Date header. Transient
 * failures are retried `attempts` times; throws what made it fail. The collector and `replay`
 * both start a tenant this way.
 */
export async function connectTenant(rt: TenantRuntime, signal: AbortSignal, attempts: number, log: Logger): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rt.tokens.getToken();
      const subs = await listSubscriptions(rt.api, signal);
      log.debug('tenant started', {
        tenant: rt.tenant.name,
        apiUrl: rt.tenant.apiUrl,
        clockSkewSeconds: rt.clock.skewMs === undefined ? null : Math.round(rt.clock.skewMs / 1000),
        subscriptions: Object.fromEntries(subs.map((x) => [x.contentType, x.status])),
      });
      return;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if ((err instanceof CollectorError && err.fatal) || attempt + 1 >= attempts) throw err;
      const delay = backoffDelay(attempt, BACKOFF.tokenStartup);
      log.warn('cannot reach the API yet; retrying', { tenant: rt.tenant.name, delayMs: delay, error: describeError(err) });
      await sleep(delay, signal);
    }
  }
}
