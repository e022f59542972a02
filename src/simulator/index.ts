/**
 * The embedded Office 365 Management Activity API simulator (DESIGN.md "The embedded simulator").
 *
 * One HTTPS server on loopback plays both sides the collector talks to:
 * - Entra ID: `/{tenant}/v2.0/.well-known/openid-configuration`, `/{tenant}/.well-known/openid-configuration`,
 *   `/common/discovery/instance`, `/{tenant}/discovery/v2.0/keys`, and the token endpoints
 *   `POST /{tenant}/oauth2/v2.0/token` (scope) and `POST /{tenant}/oauth2/token` (resource).
 * - The API: `/api/v1.0/{tenant}/activity/feed/subscriptions/{start,stop,list,content}` and
 *   `/api/v1.0/{tenant}/activity/feed/audit/{contentId}` (`/api/v1/` is accepted too).
 *
 * Things a client author must know (all deliberate, see the files named):
 * - 401 for a missing/invalid/expired token has body `{"Message":"Authorization has been denied for
 *   this request."}` and a `WWW-Authenticate: Bearer error="invalid_token"` header with the reason,
 *   not an AF code (api-routes.ts). Tenant mismatch is 401 AF20010; a token without
 *   ActivityFeed.Read is 401 AF10001. Every other API error is `{"error":{"code":"AF…","message":…}}`.
 * - Access tokens are checked with no clock skew against the simulator clock (`now`).
 * - Time parameters: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM`, `YYYY-MM-DDTHH:MM:SS`, fraction and `Z`
 *   optional, UTC; unparseable → 400 AF20002; rule violations → 400 AF20055 (time-window.ts).
 * - NextPageUri repeats contentType/startTime/endTime and adds nextPage, but not PublisherIdentifier.
 * - Client assertions: a `jti` reused by a different assertion is refused (AADSTS700025); the same
 *   assertion re-sent while valid is accepted, as msal-node caches it for up to 10 minutes; exp/nbf
 *   are checked against the simulator clock with 5 minutes of skew.
 * - Tokens are checked against the simulator clock: moving `now` back more than 5 minutes makes a
 *   token issued earlier "not yet valid" (401); moving it forward past `exp` expires it.
 * - The simulator clock is `now() + clockOffsetMs`: an offset plays a server whose clock differs
 *   from the collector's (§9.3); every rule, the data and the `Date` header follow it.
 * - Every response carries a `Date` header from the simulator clock.
 * - stats().byRoute keys: metadata, token, start, stop, list, content, blob, unknown.
 *   missingPublisherIdentifier counts API calls (start/stop/list/content/blob) without it.
 * - Faults (fault-spec.ts lists kinds, default routes and where each applies): route 'any' matches
 *   every request the kind applies to, never metadata or unknown paths; 'expire-token' applies
 *   only to API calls; 'slow' waits delayMs (default 2000) then answers normally; the body faults
 *   ('not-array', 'invalid-json') change only a 200 answer; 'subscription-disabled' waits for a
 *   request that reads an enabled subscription and stops it (restart: §3.2 gap).
 * - Late release (lateRelease): a share of blobs listed only at anchor + releaseAfterMs, dated
 *   hours to days before it: content a collector's cursor has already passed (§4 "Latency").
 * - latencyMs delays every API answer (start, stop, list, content, blob) by a timer, never the
 *   token or metadata endpoints; the request is counted (stats, firstApiRequestMs) on arrival.
 * - Blob bodies are rendered once to Buffers and served as they are; records are held only as
 *   those bytes (SimBlob.records parses them on demand).
 * - Many tenants (options.tenants, tenants.ts): one server, the tenant id in the path picks the
 *   tenant; each has its own app, content, subscriptions, quota and counters (Simulator.tenants).
 *   A fault with a `tenant` index hits only that tenant; one without hits any tenant's requests.
 *   Tenant 1 is the one-tenant simulator of the same seed, so `tenants: 1` changes nothing.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { generateSigningKey } from './access-token.ts';
import { Subscriptions, type ApiContext } from './api-routes.ts';
import { JtiStore, registerCertificatePem, type RegisteredCertificate } from './assertion.ts';
import { ContentStore } from './content-store.ts';
import { contentTypeForRecord, renderRecords } from './corpus.ts';
import { FaultQueue, RequestQuota } from './faults.ts';
import { seededGuid } from './prng.ts';
import { SimServer } from './server.ts';
import { generateSynthetic, planCorpus, regionForSeed, type PlannedBlob } from './synthetic.ts';
import { emptyTenantStats, TenantDirectory, tenantSeed, type TenantState } from './tenants.ts';
import { generateServerTls } from './tls.ts';
import { acceptedResources, type TokenContext } from './token-endpoint.ts';
import { API_RETENTION_MS, RETENTION_SAFETY_MS } from '../management-api/limits.ts';
import { CONTENT_TYPES, type AddRecordsOptions, type AuditRecord, type SimBlob, type SimStats, type SimTenant, type Simulator, type SimulatorOptions } from './types.ts';

export type { AddRecordsOptions, AuditRecord, ContentType, Fault, FaultKind, FaultRoute, LateRelease, SimBlob, SimStats, SimTenant, SimTenantStats, Simulator, SimulatorOptions } from './types.ts';
export { CONTENT_TYPES } from './types.ts';
export { tenantSeed } from './tenants.ts';
export { DEFAULT_SLOW_MS, faultApplies, FAULT_KINDS, FAULT_KIND_NAMES, FAULT_ROUTES, formatFault, parseFaultSpec } from './fault-spec.ts';
export { contentTypeForRecord, parseCorpus } from './corpus.ts';
export { generateClientCertificate } from './tls.ts';
export { parseListTime } from './time-window.ts';

/** The longest latencyMs accepted: a minute, beyond any API answer a collector should wait for. */
export const MAX_LATENCY_MS = 60_000;

/** The most tenants one simulator serves: far beyond a collector's config, small enough to start in seconds. */
export const MAX_TENANTS = 1000;

const SECRET_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789~._-';

/** 40 characters, the length and alphabet of an Entra client secret value. Never seeded. */
function randomSecret(): string {
  const bytes = randomBytes(40);
  let out = '';
  for (const b of bytes) out += SECRET_ALPHABET[b % SECRET_ALPHABET.length];
  return out;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return isIP(host) === 6 ? `[${host}]` : host;
}

function check(cond: boolean, message: string): void {
  if (!cond) throw new Error(`startSimulator: ${message}`);
}

/**
 * The longest a late-release blob may be dated before its release: inside the API's retention
 * (listing starts at most 7 days back, §4) and inside its own expiry, with the collector's safety
 * margin, so a collector listing right after the release can still reach it.
 */
export function maxLateByMs(contentExpirationDays = 7): number {
  return Math.min(API_RETENTION_MS, contentExpirationDays * 86_400_000) - RETENTION_SAFETY_MS;
}

/** Starts the simulator on loopback HTTPS; throws an Error naming the bad option, or the listen error (its `code` kept). */
export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const host = opts.host ?? '127.0.0.1';
  const seed = opts.seed ?? 1;
  const localNow = opts.now ?? Date.now;
  const clockOffsetMs = opts.clockOffsetMs ?? 0;
  const now = clockOffsetMs === 0 ? localNow : () => localNow() + clockOffsetMs;
  const spanHours = opts.spanHours ?? 20;
  const lateFraction = opts.lateFraction ?? 0;
  const lateMinutes = opts.lateMinutes ?? [2, 30];
  const pageSize = opts.pageSize ?? 32;
  const recordsWanted = opts.records ?? 2000;
  const expirationDays = opts.contentExpirationDays ?? 7;
  const duplicateFraction = opts.duplicateFraction ?? 0;
  check(Number.isInteger(seed), `seed must be an integer, got ${seed}`);
  check(Number.isInteger(recordsWanted) && recordsWanted >= 0, `records must be a non-negative integer, got ${recordsWanted}`);
  check(spanHours > 0, `spanHours must be > 0, got ${spanHours}`);
  check(lateFraction >= 0 && lateFraction <= 1, `lateFraction must be within 0..1, got ${lateFraction}`);
  check(lateMinutes[0] >= 0 && lateMinutes[1] >= lateMinutes[0], `lateMinutes must be [min, max] with 0 <= min <= max, got [${lateMinutes.join(', ')}]`);
  check(duplicateFraction >= 0 && duplicateFraction <= 1, `duplicateFraction must be within 0..1, got ${duplicateFraction}`);
  check(opts.requestsPerMinute === undefined || (Number.isInteger(opts.requestsPerMinute) && opts.requestsPerMinute > 0), `requestsPerMinute must be a positive integer, got ${opts.requestsPerMinute}`);
  check(opts.latencyMs === undefined || (Number.isInteger(opts.latencyMs) && opts.latencyMs >= 0 && opts.latencyMs <= MAX_LATENCY_MS), `latencyMs must be a whole number of ms from 0 to ${MAX_LATENCY_MS}, got ${opts.latencyMs}`);
  check(Number.isInteger(pageSize) && pageSize >= 1, `pageSize must be a positive integer, got ${pageSize}`);
  check(expirationDays > 0, `contentExpirationDays must be > 0, got ${expirationDays}`);
  check(Number.isFinite(clockOffsetMs), `clockOffsetMs must be a finite number, got ${clockOffsetMs}`);
  const release = opts.lateRelease;
  if (release) {
    const maxBy = maxLateByMs(expirationDays);
    check(release.fraction >= 0 && release.fraction <= 1, `lateRelease.fraction must be within 0..1, got ${release.fraction}`);
    check(release.byMs.length > 0, 'lateRelease.byMs must name at least one duration');
    for (const by of release.byMs) {
      check(Number.isFinite(by) && by > 0 && by <= maxBy, `lateRelease.byMs must each be > 0 and at most ${maxBy} ms (the API's retention minus a safety margin), got ${by}`);
    }
    check(Number.isFinite(release.releaseAfterMs) && release.releaseAfterMs >= 0, `lateRelease.releaseAfterMs must be >= 0, got ${release.releaseAfterMs}`);
  }

  const tenantCount = opts.tenants ?? 1;
  check(Number.isInteger(tenantCount) && tenantCount >= 1 && tenantCount <= MAX_TENANTS, `tenants must be a whole number from 1 to ${MAX_TENANTS}, got ${tenantCount}`);
  const sharedCertificates: RegisteredCertificate[] = (opts.clientCertificates ?? []).map(registerCertificatePem);

  const faults = new FaultQueue(tenantCount);
  for (const f of opts.faults ?? []) {
    try {
      faults.inject(f);
    } catch (err) {
      check(false, (err as Error).message.replace(/^injectFault: /, `faults: ${f.kind}@${f.route}: `));
    }
  }

  const [tls, signingKey] = await Promise.all([generateServerTls(host), generateSigningKey()]);
  const stats: SimStats = { requests: 0, byRoute: {}, missingPublisherIdentifier: 0, unknownRequests: 0, tokensIssued: 0, faultsServed: 0, throttled: 0, firstApiRequestMs: null, lastApiRequestMs: null };
  const onUnknownRequest =
    opts.onUnknownRequest ?? ((method: string, url: string) => process.stderr.write(`[m365-sim] 404 no route for ${method} ${url.split('?')[0]}\n`));

  let directory: TenantDirectory | null = null;
  const server = new SimServer({
    tls: { key: tls.keyPem, cert: tls.certPem },
    now,
    faults,
    latencyMs: opts.latencyMs ?? 0,
    stats,
    tenants: () => {
      if (!directory) throw new Error('simulator not ready');
      return directory;
    },
    onUnknownRequest,
  });
  const port = await server.listen(opts.port ?? 0, host);
  const baseUrl = `https://${urlHost(host)}:${port}`;

  try {
    const anchor = opts.anchor ?? now();
    const lateRelease = release ? { fraction: release.fraction, byMs: release.byMs, releaseAt: anchor + release.releaseAfterMs } : undefined;
    const schedule = { anchor, spanHours, lateFraction, lateMinutes, lateRelease };
    const audiences = acceptedResources({ apiUrl: baseUrl });

    /** Tenant `index`: its app, and its content rendered once (what a one-tenant simulator with its seed serves). */
    const buildTenant = (index: number): { state: TenantState; store: ContentStore; certificates: RegisteredCertificate[] } => {
      const tSeed = tenantSeed(seed, index);
      const first = index === 1;
      const tenantId = (first ? opts.tenantId : undefined) ?? seededGuid(tSeed, 'tenant');
      const clientId = (first ? opts.clientId : undefined) ?? seededGuid(tSeed, 'client');
      const clientSecret = (first ? opts.clientSecret : undefined) ?? randomSecret();
      const feedRoot = `${baseUrl}/api/v1.0/${tenantId}/activity/feed`;
      const store = new ContentStore(feedRoot, regionForSeed(tSeed), expirationDays * 86_400_000);
      const planned: PlannedBlob[] = opts.corpus
        ? planCorpus(opts.corpus, tSeed, schedule, contentTypeForRecord)
        : generateSynthetic({ ...schedule, seed: tSeed, records: recordsWanted, tenantId, duplicateFraction });
      for (const p of planned) store.add(p.contentType, p.createdMs, p.availableAt, p.body);
      planned.length = 0; // the store holds the bodies now
      const certificates = [...sharedCertificates];
      const tenantStats = emptyTenantStats();
      const token: TokenContext = {
        tenantId,
        clientId,
        clientSecret,
        loginUrl: baseUrl,
        apiUrl: baseUrl,
        now,
        certificates,
        jtis: new JtiStore(),
        rejectReplay: opts.rejectReplayedAssertions ?? true,
        tokenLifetimeSeconds: opts.tokenLifetimeSeconds ?? 3599,
        signingKey,
        onTokenIssued: () => {
          stats.tokensIssued += 1;
          tenantStats.tokensIssued += 1;
        },
      };
      const api: ApiContext = { tenantId, apiUrl: baseUrl, loginUrl: baseUrl, feedRoot, now, store, subscriptions: new Subscriptions(), pageSize, signingKey, audiences };
      const quota = opts.requestsPerMinute ? new RequestQuota(opts.requestsPerMinute) : null;
      return { state: { index, token, api, quota, stats: tenantStats }, store, certificates };
    };

    const built = Array.from({ length: tenantCount }, (_, i) => buildTenant(i + 1));
    try {
      directory = new TenantDirectory(built.map((b) => b.state));
    } catch (err) {
      check(false, (err as Error).message);
    }

    const addRecords = (store: ContentStore, records: AuditRecord[], o: AddRecordsOptions = {}): SimBlob[] => {
      const createdMs = o.contentCreated ?? now();
      const availableAt = o.availableAt ?? createdMs;
      const groups = new Map<string, AuditRecord[]>();
      for (const r of records) {
        const ct = o.contentType ?? contentTypeForRecord(r);
        check((CONTENT_TYPES as readonly string[]).includes(ct), `addRecords: unknown content type '${ct}'`);
        const g = groups.get(ct);
        if (g) g.push(r);
        else groups.set(ct, [r]);
      }
      return [...groups].map(([ct, recs]) => store.add(ct, createdMs, availableAt, renderRecords(recs)));
    };
    const tenants: SimTenant[] = built.map(({ state, store, certificates }) => ({
      index: state.index,
      seed: tenantSeed(seed, state.index),
      tenantId: state.token.tenantId,
      clientId: state.token.clientId,
      clientSecret: state.token.clientSecret,
      blobs: (): readonly SimBlob[] => store.blobs(),
      addRecords: (records, o) => addRecords(store, records, o),
      registerCertificate(pem: string) {
        certificates.push(registerCertificatePem(pem));
      },
      stats: () => structuredClone(state.stats),
    }));
    const first = tenants[0]!;

    return {
      apiUrl: baseUrl,
      loginUrl: baseUrl,
      tenantId: first.tenantId,
      clientId: first.clientId,
      clientSecret: first.clientSecret,
      caPem: tls.caPem,
      tenants,
      now: () => now(),
      blobs: (): readonly SimBlob[] => (tenants.length === 1 ? first.blobs() : tenants.flatMap((t) => t.blobs())),
      addRecords: (records, o) => first.addRecords(records, o),
      registerCertificate(pem: string) {
        // Parsed once, registered on every tenant's app.
        const cert = registerCertificatePem(pem);
        for (const b of built) b.certificates.push(cert);
      },
      injectFault: (f) => faults.inject(f),
      stats: () => structuredClone(stats),
      close: () => server.close(),
    };
  } catch (err) {
    await server.close();
    throw err;
  }
}
