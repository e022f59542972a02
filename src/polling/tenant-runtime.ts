import https from 'node:https';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { createTokenProvider, type TokenProvider } from '../auth/token-provider.ts';
import type { Config, TenantConfig } from '../config/schema.ts';
import { ApiClient } from '../management-api/api-client.ts';
import { RequestBudget } from './request-budget.ts';
import { ApiClock } from '../support/api-clock.ts';
import { systemClock, type Clock } from '../support/clock.ts';
import type { Logger } from '../support/logger.ts';

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
 * TLS-inspecting proxy's CA, or the simulator's) applies to both. The extra CA is added to Node's
 * bundled roots, not put in their place.
 */
export function createHttpsAgent(opts: { caFile?: string; caPem?: string; maxSockets: number }): https.Agent {
  const extra = [opts.caPem, opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined].filter((x): x is string => !!x);
  return new https.Agent({
    keepAlive: true,
    maxSockets: opts.maxSockets,
    // A secure context built once, not a `ca` option: the agent keys its socket pool by
    // concatenating every `ca` string for each request, which with Node's ~150 roots cost a third
    // of the collector's CPU.
    secureContext: extra.length ? tls.createSecureContext({ ca: [...tls.rootCertificates, ...extra] }) : undefined,
  });
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
  const agent = createHttpsAgent({ caFile: config.api.caFile, caPem: opts.extraCaPem, maxSockets: config.polling.concurrency + 4 });
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
