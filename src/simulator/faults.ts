/**
 * Switchable, deterministic faults: each injected fault hits the next `count` requests on its route,
 * in injection order. The responses mirror what collectors meet in production (reference §5):
 * 429 (with Retry-After only when asked: the API documents none), 403 + AF429, 500 AF50000,
 * 503, connection resets, truncated bodies, slow answers, and tokens the API suddenly calls expired.
 */
import { afError, entraError, type SimResponse } from './errors.ts';
import type { RouteName } from './routes.ts';
import type { Fault, FaultKind, FaultRoute } from './types.ts';

const ROUTES: readonly FaultRoute[] = ['token', 'list', 'content', 'blob', 'start', 'any'];
const KINDS: readonly FaultKind[] = ['429', '403-AF429', '500', '503', 'reset', 'truncate', 'slow', 'expire-token'];
const API_ROUTES: readonly RouteName[] = ['start', 'stop', 'list', 'content', 'blob'];

/** The AF429 message names the operation (reference §5: e.g. `Method=GetBlob`). */
const METHOD_NAMES: Partial<Record<RouteName, string>> = {
  start: 'StartSubscription',
  stop: 'StopSubscription',
  list: 'ListSubscriptions',
  content: 'ListContent',
  blob: 'GetBlob',
  token: 'Token',
};

export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

export class FaultQueue {
  private readonly pending: { fault: Fault; remaining: number }[] = [];

  inject(f: Fault): void {
    if (!ROUTES.includes(f.route)) throw new Error(`injectFault: unknown route '${String(f.route)}' (one of ${ROUTES.join(', ')})`);
    if (!KINDS.includes(f.kind)) throw new Error(`injectFault: unknown kind '${String(f.kind)}' (one of ${KINDS.join(', ')})`);
    if (!Number.isInteger(f.count) || f.count < 1) throw new Error(`injectFault: count must be a positive integer, got ${f.count}`);
    this.pending.push({ fault: { ...f }, remaining: f.count });
  }

  /**
   * The fault this request hits, if any (and count it). 'any' matches the token endpoint and every
   * API operation, not metadata or unknown paths; 'expire-token' only ever applies to API calls.
   */
  take(route: RouteName): Fault | null {
    for (const p of this.pending) {
      if (p.remaining <= 0) continue;
      const f = p.fault;
      const routeOk = f.route === 'any' ? route === 'token' || API_ROUTES.includes(route) : f.route === route;
      if (!routeOk) continue;
      if (f.kind === 'expire-token' && !API_ROUTES.includes(route)) continue;
      p.remaining -= 1;
      return f;
    }
    return null;
  }
}

/** The error response for the status-code faults, in the format of the endpoint that was hit. */
export function faultResponse(f: Fault, route: RouteName, publisherId: string | undefined, nowMs: number): SimResponse | null {
  const retry: Record<string, string> = f.retryAfterSeconds !== undefined ? { 'Retry-After': String(f.retryAfterSeconds) } : {};
  if (route === 'token') {
    switch (f.kind) {
      case '429':
      case '403-AF429':
        return withHeaders(entraError({ status: 429, error: 'temporarily_unavailable', code: 90055, description: 'The request has been throttled. Please try again later.' }, nowMs), retry);
      case '500':
        return entraError({ status: 500, error: 'server_error', code: 90033, description: 'A transient error has occurred. Please try again.' }, nowMs);
      case '503':
        return withHeaders(entraError({ status: 503, error: 'temporarily_unavailable', code: 90033, description: 'A transient error has occurred. Please try again.' }, nowMs), retry);
      default:
        return null;
    }
  }
  const method = METHOD_NAMES[route] ?? route;
  switch (f.kind) {
    case '429':
      return afError(429, 'AF429', `Too many requests. Method=${method}, PublisherId=${publisherId ?? ZERO_GUID}`, retry);
    case '403-AF429':
      return afError(403, 'AF429', `Too many requests. Method=${method}, PublisherId=${publisherId ?? ZERO_GUID}`);
    case '500':
      return afError(500, 'AF50000', 'An internal error occurred. Retry the request.');
    case '503':
      return afError(503, 'AF50005', 'An internal error occurred. Retry the request.', retry);
    default:
      return null;
  }
}

function withHeaders(r: SimResponse, h: Record<string, string>): SimResponse {
  return { ...r, headers: { ...r.headers, ...h } };
}

/**
 * Fixed one-minute windows of the simulator clock, counted per PublisherIdentifier. Returns the
 * throttling response when the call is over quota, else null.
 */
export class RequestQuota {
  private minute = -1;
  private readonly counts = new Map<string, number>();

  constructor(private readonly perMinute: number) {}

  check(route: RouteName, publisherId: string | undefined, nowMs: number): SimResponse | null {
    const minute = Math.floor(nowMs / 60_000);
    if (minute !== this.minute) {
      this.minute = minute;
      this.counts.clear();
    }
    const key = publisherId ?? ZERO_GUID;
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    if (n <= this.perMinute) return null;
    return afError(403, 'AF429', `Too many requests. Method=${METHOD_NAMES[route] ?? route}, PublisherId=${key}`);
  }
}
