/** Public types of the embedded Management Activity API simulator (see index.ts). */

export type AuditRecord = Record<string, unknown>;

/** The five content types (reference/management-api.md §3, §6): one list for both sides. */
export { CONTENT_TYPES, type ContentType } from '../management-api/content-types.ts';

export interface SimulatorOptions {
  /** Interface to bind. Default "127.0.0.1". */
  host?: string;
  /** Port to bind. Default 0 (any free port). */
  port?: number;
  /** Seed for all synthetic data and ids. Default 1. */
  seed?: number;
  /** Number of synthetic records (default 2000); ignored when `corpus` is given. */
  records?: number;
  /** Serve exactly these records instead of synthetic ones. */
  corpus?: AuditRecord[];
  /** Spread blobs' contentCreated over the past spanHours (default 20). */
  spanHours?: number;
  /** 0..1 share of blobs listed late (default 0). */
  lateFraction?: number;
  /** Listing delay range in minutes for late blobs (default [2, 30]). */
  lateMinutes?: [number, number];
  /**
   * Late release: `fraction` of the blobs (chosen with the seeded PRNG, independently of
   * `lateFraction`) become listable only `releaseAfterMs` after the anchor (the start, by default),
   * with contentCreated `byMs[i]` before that release, the durations assigned to those blobs in
   * turn. Each duration must be > 0 and leave the blob inside the API's retention at the release
   * (at most 7 days minus RETENTION_SAFETY_MS, and inside contentExpirationDays).
   */
  lateRelease?: LateRelease;
  /**
   * 0..1 share of synthetic blobs that also re-deliver 1–5 records of an earlier blob of the same
   * content type, with the same Id and values (reference §4 "Duplicates": the API does not dedupe).
   * Default 0, so by default every synthetic record Id is unique. Ignored with a corpus.
   */
  duplicateFraction?: number;
  /** Blobs per listing page before NextPageUri (default 32). */
  pageSize?: number;
  /** ms epoch the data is generated relative to (default now() at start). */
  anchor?: number;
  /** The local clock in ms (default Date.now). The simulator clock is `now() + clockOffsetMs`. */
  now?: () => number;
  /**
   * The API's clock runs this far ahead of `now` (negative: behind). Every rule (window limits,
   * expiry, token validity, the `Date` header, availableAt) and the generated data use the offset
   * clock, so a collector sees a server whose clock differs from its own (reference §9.3).
   * Default 0.
   */
  clockOffsetMs?: number;
  /** Faults armed from the start, served before any injected later (see injectFault). */
  faults?: Fault[];
  /**
   * How many tenants the one server serves (default 1), as the real service does: one login host
   * and one API host for every tenant, the tenant id in the path of both. Tenant i (1-based) is
   * what a one-tenant simulator started with `tenantSeed(seed, i)` would serve: its own tenant id,
   * client id, random secret, records (`records` each), quota counter and subscriptions. Tenant 1
   * keeps `seed` itself, so `tenants: 1` is exactly the one-tenant simulator. Faults with a
   * `tenant` index hit only that tenant's requests. With a `corpus`, every tenant serves it.
   */
  tenants?: number;
  /** Tenant 1's ids. Defaults: deterministic GUIDs from the seed (every other tenant: from its own seed). */
  tenantId?: string;
  clientId?: string;
  /** Tenant 1's secret. Default: a random 40-character secret (never derived from the seed), as for every other tenant. */
  clientSecret?: string;
  /** PEM certificates registered on the app of every tenant (for client assertions). */
  clientCertificates?: string[];
  /**
   * API request quota per minute of the simulator clock, counted per tenant and PublisherIdentifier
   * (requests without one share the tenant's all-zero pool, as in the real service). Over it, API
   * calls get 403 AF429 (reference §5 "Throttling"; the real baseline is 2,000/min per tenant).
   * Default: no quota.
   */
  requestsPerMinute?: number;
  /**
   * Answer every API call (start, stop, list, content, blob) this many ms after it arrived, from a
   * timer, so other requests are served meanwhile; the Entra side (token, metadata) is never
   * delayed. The real API answers in about 100-800 ms (issue 7, "Concurrency that fits the API"):
   * a collector's download concurrency only shows its worth against such a latency. Applied before
   * faults and the quota are judged, and in addition to a 'slow' fault's delay. Default 0.
   */
  latencyMs?: number;
  /** Access token lifetime, default 3599 (what Entra answers). */
  tokenLifetimeSeconds?: number;
  /** contentExpiration = contentCreated + this many days (default 7). */
  contentExpirationDays?: number;
  /**
   * Reject a client assertion whose `jti` was already used by a different assertion (default
   * true). The identical assertion presented again while valid is accepted: msal-node caches it
   * for up to 10 minutes, forced refreshes included.
   */
  rejectReplayedAssertions?: boolean;
  /**
   * Called for every request the simulator has no route for (they are answered 404 with a JSON
   * error). Default: one line on stderr, so a missing endpoint is never silent.
   */
  onUnknownRequest?: (method: string, url: string) => void;
}

/** See SimulatorOptions.lateRelease. */
export interface LateRelease {
  /** 0..1 share of blobs released late. */
  fraction: number;
  /** contentCreated = release time minus one of these (assigned in turn); each > 0. */
  byMs: number[];
  /** Release time = anchor + this (>= 0). */
  releaseAfterMs: number;
}

export interface SimBlob {
  readonly contentType: string;
  readonly contentId: string;
  readonly contentUri: string;
  /** ISO-8601 UTC with milliseconds and Z, like the real listing. */
  readonly contentCreated: string;
  readonly contentExpiration: string;
  /** ms epoch (simulator clock) from which the blob is listed (late blobs: after contentCreated). */
  readonly availableAt: number;
  /** Number of records in the body. */
  readonly recordCount: number;
  /**
   * The records, parsed from the served body on every access (the simulator keeps only the
   * bytes): a fresh array each time, so read it once into a variable in loops.
   */
  readonly records: AuditRecord[];
}

export type FaultRoute = 'token' | 'list' | 'content' | 'blob' | 'start' | 'any';
export type FaultKind =
  | '429'
  | '403-AF429'
  | '500'
  | '503'
  | 'reset'
  | 'truncate'
  | 'slow'
  | 'expire-token'
  | '404'
  | 'html'
  | 'not-array'
  | 'invalid-json'
  | 'subscription-disabled';

/** One fault: the kinds, their default routes and where each applies are listed in fault-spec.ts. */
export interface Fault {
  route: FaultRoute;
  kind: FaultKind;
  /** How many matching requests it hits. */
  count: number;
  /** For 'slow': wait this long before answering (default 2000). */
  delayMs?: number;
  /** For '429' and '503': send Retry-After with this many seconds. */
  retryAfterSeconds?: number;
  /**
   * Only requests of this tenant (1-based index into Simulator.tenants) are hit; a request whose
   * tenant is not one of the simulator's (an unknown id in the path, instance discovery) never is.
   * Default: every tenant's requests, the count shared between them.
   */
  tenant?: number;
}

export interface SimStats {
  requests: number;
  byRoute: Record<string, number>;
  missingPublisherIdentifier: number;
  unknownRequests: number;
  tokensIssued: number;
  faultsServed: number;
  /** API calls refused by the requestsPerMinute quota (not counted in faultsServed). */
  throttled: number;
  /**
   * Simulator-clock ms when the first and the latest API call (start, stop, list, content, blob)
   * arrived, null before the first: with byRoute, the API request rate a collector achieved.
   */
  firstApiRequestMs: number | null;
  lastApiRequestMs: number | null;
}

/** What a tenant's own counters hold (SimTenant.stats()): its requests, whatever the route. */
export interface SimTenantStats {
  requests: number;
  byRoute: Record<string, number>;
  tokensIssued: number;
  faultsServed: number;
  /** API calls refused by this tenant's requestsPerMinute quota. */
  throttled: number;
}

/** Options of addRecords (see Simulator.addRecords). */
export interface AddRecordsOptions {
  contentType?: string;
  contentCreated?: number;
  availableAt?: number;
}

/** One tenant the simulator serves: its app's credentials and its content. */
export interface SimTenant {
  /** 1-based, the index a Fault's `tenant` names. */
  readonly index: number;
  /** The seed its ids and records come from (tenantSeed(seed, index)). */
  readonly seed: number;
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  blobs(): readonly SimBlob[];
  /** Records added now (or at `contentCreated`), one blob per content type. */
  addRecords(records: AuditRecord[], opts?: AddRecordsOptions): SimBlob[];
  /** Registers a PEM certificate on this tenant's app only. */
  registerCertificate(pem: string): void;
  stats(): SimTenantStats;
}

export interface Simulator {
  apiUrl: string;
  loginUrl: string;
  /** Tenant 1's credentials (the only tenant unless SimulatorOptions.tenants says otherwise). */
  tenantId: string;
  clientId: string;
  clientSecret: string;
  caPem: string;
  /** Every tenant, in index order (tenants[0] is tenant 1). */
  tenants: readonly SimTenant[];
  /** The simulator clock (ms epoch): `now()` of the options plus clockOffsetMs. */
  now(): number;
  /** Every tenant's blobs, tenant by tenant (with one tenant: its blobs). */
  blobs(): readonly SimBlob[];
  /** Adds records to tenant 1 (use tenants[i].addRecords for another). */
  addRecords(records: AuditRecord[], opts?: AddRecordsOptions): SimBlob[];
  /** Registers a PEM certificate on every tenant's app. */
  registerCertificate(pem: string): void;
  /** Arms a fault; throws a one-line Error when it could never be served (an index beyond the tenants included). */
  injectFault(f: Fault): void;
  /** Counters of every request, all tenants together. */
  stats(): SimStats;
  close(): Promise<void>;
}
