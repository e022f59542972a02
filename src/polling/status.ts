import type { FeedPoller } from './feed-poller.ts';

/**
 * The status record of one feed (DESIGN "Routing", the original Devo collector's "Monitor it"):
 * enough for an inactivity alert (lag, last success) and for a human reading it in the SIEM.
 * Never holds a secret: only names, counters, times and error texts (which never carry secrets).
 */
export function statusRecord(f: FeedPoller, now: number, skewMs: number | undefined): Record<string, unknown> {
  const s = f.state;
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    type: 'm365-forward.status',
    tenant: f.deps.tenant.name,
    tenantId: f.deps.tenant.tenantId,
    contentType: f.deps.contentType,
    cursor: iso(s.cursor),
    lagSeconds: Math.max(0, Math.round((now - s.cursor) / 1000)),
    blobsDelivered: s.blobsDelivered,
    recordsDelivered: s.recordsDelivered,
    retryQueue: s.retry.length,
    lost: s.lost,
    // Tenant-wide: the request quota is per tenant (and PublisherIdentifier), not per feed.
    throttled: f.deps.api.stats.throttled,
    timeFallbacks: f.counters.timeFallbacks,
    lastPollAt: iso(f.counters.lastPollAt),
    lastSuccessAt: iso(f.counters.lastSuccessAt),
    clockSkewSeconds: skewMs === undefined ? null : Math.round(skewMs / 1000),
    lastError: s.lastError ?? null,
  };
}
