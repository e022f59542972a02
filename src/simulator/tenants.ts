/**
 * The tenants one simulator serves. The real service has one login host and one API host for
 * every tenant, the tenant id in the path of both (reference management-api.md §1, §2.2, §3):
 * a request is served from the state of the tenant its path names, each with its own app
 * (credentials, certificates, assertion ids), content, subscriptions, quota and counters. One
 * token-signing key serves them all, as one Entra ID does; a token of one tenant presented on
 * another's path is refused by the tenant check (AF20010).
 */
import type { ApiContext } from './api-routes.ts';
import type { RequestQuota } from './faults.ts';
import type { TokenContext } from './token-endpoint.ts';
import type { SimTenantStats } from './types.ts';

/** One tenant's server-side state. */
export interface TenantState {
  /** 1-based, as a Fault's `tenant` names it. */
  index: number;
  token: TokenContext;
  api: ApiContext;
  /** Its own requestsPerMinute counter, or null without a quota. */
  quota: RequestQuota | null;
  stats: SimTenantStats;
}

/** Fresh counters for one tenant. */
export function emptyTenantStats(): SimTenantStats {
  return { requests: 0, byRoute: {}, tokensIssued: 0, faultsServed: 0, throttled: 0 };
}

/**
 * Tenant `index`'s seed (1-based): tenant 1 keeps the simulator's seed, so a one-tenant simulator
 * serves what it always did; each other tenant gets a 32-bit FNV-1a hash of seed and index, so its
 * ids and records are its own and the same on every run with the same seed.
 */
export function tenantSeed(seed: number, index: number): number {
  if (index === 1) return seed;
  const label = `${seed}/tenant-${index}`;
  let h = 2166136261;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** The tenants by id, compared without case as Entra ID and the API compare them. */
export class TenantDirectory {
  private readonly byId = new Map<string, TenantState>();

  /** Throws when two tenants share an id (the path could not tell them apart). */
  constructor(readonly all: readonly TenantState[]) {
    if (all.length === 0) throw new Error('TenantDirectory: no tenant');
    for (const t of all) {
      const key = t.token.tenantId.toLowerCase();
      if (this.byId.has(key)) throw new Error(`two tenants share the tenant id ${t.token.tenantId}`);
      this.byId.set(key, t);
    }
  }

  /** Tenant 1: what answers requests that name no tenant of ours (its checks then refuse them). */
  get first(): TenantState {
    return this.all[0]!;
  }

  find(tenantId: string): TenantState | undefined {
    return this.byId.get(tenantId.toLowerCase());
  }

  /**
   * The tenant an instance discovery request is about: the first path segment of its
   * `authorization_endpoint` parameter (what MSAL sends, `https://host/{tenant}/oauth2/v2.0/authorize`),
   * else none.
   */
  forDiscovery(query: Map<string, string>): TenantState | undefined {
    const endpoint = query.get('authorization_endpoint');
    if (!endpoint) return undefined;
    try {
      const segment = new URL(endpoint).pathname.split('/')[1];
      return segment ? this.find(decodeURIComponent(segment)) : undefined;
    } catch {
      return undefined;
    }
  }
}
