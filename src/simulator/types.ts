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
   * 0..1 share of synthetic blobs that also re-deliver 1–5 records of an earlier blob of the same
   * content type, with the same Id and values (reference §4 "Duplicates": the API does not dedupe).
   * Default 0, so by default every synthetic record Id is unique. Ignored with a corpus.
   */
  duplicateFraction?: number;
  /** Blobs per listing page before NextPageUri (default 32). */
  pageSize?: number;
  /** ms epoch the data is generated relative to (default now() at start). */
  anchor?: number;
  /** The simulator's clock in ms (default Date.now); used for every rule. */
  now?: () => number;
  /** Defaults: deterministic GUIDs from the seed. */
  tenantId?: string;
  clientId?: string;
  /** Default: a random 40-character secret (never derived from the seed). */
  clientSecret?: string;
  /** PEM certificates registered on the app (for client assertions). */
  clientCertificates?: string[];
  /**
   * API request quota per minute of the simulator clock, counted per PublisherIdentifier (requests
   * without one share the all-zero pool, as in the real service). Over it, API calls get 403 AF429
   * (reference §5 "Throttling"; the real baseline is 2,000/min per tenant). Default: no quota.
   */
  requestsPerMinute?: number;
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

export interface SimBlob {
  contentType: string;
  contentId: string;
  contentUri: string;
  /** ISO-8601 UTC with milliseconds and Z, like the real listing. */
  contentCreated: string;
  contentExpiration: string;
  /** ms epoch from which the blob is listed (late blobs: after contentCreated). */
  availableAt: number;
  records: AuditRecord[];
}

export type FaultRoute = 'token' | 'list' | 'content' | 'blob' | 'start' | 'any';
export type FaultKind = '429' | '403-AF429' | '500' | '503' | 'reset' | 'truncate' | 'slow' | 'expire-token';

export interface Fault {
  route: FaultRoute;
  kind: FaultKind;
  /** How many matching requests it hits. */
  count: number;
  /** For 'slow': wait this long before answering (default 2000). */
  delayMs?: number;
  /** For '429' (and '503'): send Retry-After with this many seconds. */
  retryAfterSeconds?: number;
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
}

export interface Simulator {
  apiUrl: string;
  loginUrl: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  caPem: string;
  blobs(): readonly SimBlob[];
  addRecords(
    records: AuditRecord[],
    opts?: { contentType?: string; contentCreated?: number; availableAt?: number },
  ): SimBlob[];
  registerCertificate(pem: string): void;
  injectFault(f: Fault): void;
  stats(): SimStats;
  close(): Promise<void>;
}
