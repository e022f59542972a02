import type { ContentType } from '../management-api/content-types.ts';
import type { FeedCheckpoint } from './checkpoint.ts';
import type { FeedPoller } from './feed-poller.ts';
import type { TenantRuntime } from './tenant-runtime.ts';

/**
 * The status record of one feed (DESIGN "Routing", the original Devo collector's "Monitor it"):
 * enough for an inactivity alert (lag, last success, stalled) and for a human reading it in the
 * SIEM. Never holds a secret: only names, counters, times and error texts (which never carry
 * secrets).
 */
export function statusRecord(f: FeedPoller, opts: { stallAfterMs: number; monotonicNow?: number }): Record<string, unknown> {
  const s = f.checkpoint.s;
  const d = f.deps;
  const apiNow = d.clock.now();
  const iso = (ms: number | undefined) => (ms === undefined || ms === 0 ? null : new Date(ms).toISOString());
  const idleMs = (opts.monotonicNow ?? performance.now()) - f.counters.progressAt;
  const skew = d.clock.skewMs;
  return {
    type: 'm365-forward.status',
    tenant: d.tenant.name,
    tenantId: d.tenant.tenantId,
    contentType: d.contentType,
    cursor: iso(s.cursor),
    lagSeconds: Math.max(0, Math.round((apiNow - s.cursor) / 1000)),
    blobsDelivered: s.blobsDelivered,
    recordsDelivered: s.recordsDelivered,
    retryQueue: f.checkpoint.retry.size,
    lost: s.lost,
    gaps: s.gaps,
    deadLettered: s.deadLettered,
    lateBlobs: s.lateBlobs,
    maxLatenessSeconds: s.maxLatenessSeconds,
    lastSweepAt: iso(s.lastSweepAt),
    // Tenant-wide: the request quota is per tenant (and PublisherIdentifier), not per feed.
    throttled: d.api.stats.throttled,
    timeFallbacks: f.counters.timeFallbacks,
    lastPollAt: iso(f.counters.lastPollAt),
    lastSuccessAt: iso(f.counters.lastSuccessAt),
    // No complete poll for status.stall_after: listing keeps failing, or the output takes nothing.
    stalled: idleMs > opts.stallAfterMs,
    stalledSeconds: idleMs > opts.stallAfterMs ? Math.round(idleMs / 1000) : 0,
    clockSkewSeconds: skew === undefined ? null : Math.round(skew / 1000),
    lastError: s.lastError ?? null,
  };
}

/**
 * The status record of a feed whose tenant could not start (credentials refused, API
 * unreachable): the same fields, from its checkpoint when the state has one, `stalled` true and
 * `lastError` saying why, so the same alerts fire.
 */
export function failedTenantStatus(rt: TenantRuntime, contentType: ContentType, cp: FeedCheckpoint | undefined, error: string): Record<string, unknown> {
  const s = cp?.s;
  const iso = (ms: number | undefined) => (ms === undefined || ms === 0 ? null : new Date(ms).toISOString());
  return {
    type: 'm365-forward.status',
    tenant: rt.tenant.name,
    tenantId: rt.tenant.tenantId,
    contentType,
    cursor: iso(s?.cursor),
    lagSeconds: s ? Math.max(0, Math.round((rt.clock.now() - s.cursor) / 1000)) : null,
    blobsDelivered: s?.blobsDelivered ?? 0,
    recordsDelivered: s?.recordsDelivered ?? 0,
    retryQueue: cp?.retry.size ?? 0,
    lost: s?.lost ?? 0,
    gaps: s?.gaps ?? 0,
    deadLettered: s?.deadLettered ?? 0,
    throttled: rt.api.stats.throttled,
    stalled: true,
    tenantStarted: false,
    lastError: error,
  };
}
