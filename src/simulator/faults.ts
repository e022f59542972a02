/**
 * Switchable, deterministic faults: each injected fault hits the next `count` requests it applies
 * to, in injection order. The responses mirror what collectors meet in production (reference §5):
 * 429 (with Retry-After only when asked: the API documents none), 403 + AF429, 500 AF50000,
 * 503, connection resets, truncated bodies, slow answers, tokens the API suddenly calls expired,
 * and what a proxy or CDN edge in front of it answers: a bare 404, an HTML 502 page, bodies of the
 * wrong JSON shape or not JSON at all. The catalogue (kinds, routes, defaults) is fault-spec.ts.
 */
import { afError, entraError, type SimResponse } from './errors.ts';
import { faultApplies, faultProblem } from './fault-spec.ts';
import type { RouteName } from './routes.ts';
import type { Fault } from './types.ts';

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

  /** `tenants`: how many tenants the simulator serves (the highest index a fault may name). */
  constructor(private readonly tenants = 1) {}

  /** Arms a fault; throws a one-line Error naming the valid values when it could never be served. */
  inject(f: Fault): void {
    const problem = faultProblem(f, this.tenants);
    if (problem) throw new Error(`injectFault: ${problem}`);
    this.pending.push({ fault: { ...f }, remaining: f.count });
  }

  /**
   * The fault this request hits, if any (and count it). A fault matches its own route, or with
   * 'any' every route its kind applies to (fault-spec.ts: never metadata or unknown paths); one
   * with a `tenant` index matches only requests of that tenant (`tenant`: the 1-based index of the
   * request's tenant, undefined when it names none of the simulator's).
   * `ready(f)` lets the caller pass over a fault that would have no effect on this request yet
   * ('subscription-disabled' on a content type with no enabled subscription): it stays armed.
   */
  take(route: RouteName, ready: (f: Fault) => boolean = () => true, tenant?: number): Fault | null {
    for (const p of this.pending) {
      if (p.remaining <= 0) continue;
      const f = p.fault;
      if (!faultApplies(f.kind, route) || (f.route !== 'any' && f.route !== route)) continue;
      if (f.tenant !== undefined && f.tenant !== tenant) continue;
      if (!ready(f)) continue;
      p.remaining -= 1;
      return f;
    }
    return null;
  }

  /** Faults still armed, with the requests they have left. */
  armed(): Fault[] {
    return this.pending.filter((p) => p.remaining > 0).map((p) => ({ ...p.fault, count: p.remaining }));
  }
}

/**
 * What a proxy or CDN edge answers instead of the API: no AF code, a body a JSON parser chokes on.
 * 404: empty body (reference §3.5: a collector must not read every 404 as AF20050 "no such blob").
 * html: the 502 page of a reverse proxy whose upstream failed.
 */
const BAD_GATEWAY_HTML =
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';

/** The replacement response for the status-code faults, in the format of the endpoint that was hit. */
export function faultResponse(f: Fault, route: RouteName, publisherId: string | undefined, nowMs: number): SimResponse | null {
  const retry: Record<string, string> = f.retryAfterSeconds !== undefined ? { 'Retry-After': String(f.retryAfterSeconds) } : {};
  if (f.kind === '404') return { status: 404, headers: {}, body: '' };
  if (f.kind === 'html') return { status: 502, headers: { 'Content-Type': 'text/html' }, body: BAD_GATEWAY_HTML };
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
 * The body faults change a successful answer: 'not-array' wraps the array in an object,
 * 'invalid-json' drops the closing byte and changes one in the middle (so the text is not JSON
 * whatever it held). Any other answer (an error the request earned anyway) passes unchanged: the
 * fault then only counts as served, so a 401 never turns into a 200.
 */
export function mangleBody(kind: 'not-array' | 'invalid-json', r: SimResponse): SimResponse {
  if (r.status !== 200) return r;
  const body = typeof r.body === 'string' ? Buffer.from(r.body, 'utf8') : r.body;
  if (kind === 'not-array') {
    if (body[0] !== 0x5b /* [ */) return r;
    return { ...r, body: Buffer.concat([Buffer.from('{"value":'), body, Buffer.from('}')]) };
  }
  const broken = Buffer.from(body.subarray(0, Math.max(0, body.length - 1)));
  if (broken.length > 2) broken[Math.floor(broken.length / 2)] = 0x23; // '#'
  return { ...r, headers: { ...r.headers, 'Content-Type': 'application/json; charset=utf-8' }, body: broken.length ? broken : Buffer.from('{') };
}

/**
 * Fixed one-minute windows of the simulator clock, counted per PublisherIdentifier: one per tenant
 * (the service counts each tenant's calls on its own, reference §5). Returns the throttling
 * response when the call is over quota, else null.
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
