/**
 * The fault catalogue: every kind, the routes it can hit, its default route, and the
 * `KIND[@ROUTE][:COUNT][@TENANT_INDEX]` text form operators give to `simulate --fault`. Pure: no
 * I/O, no state.
 * What each kind answers is in faults.ts (status-code kinds) and server.ts (the others).
 */
import type { RouteName } from './routes.ts';
import type { Fault, FaultKind, FaultRoute } from './types.ts';

/** How long a 'slow' fault waits when it names no delayMs. */
export const DEFAULT_SLOW_MS = 2000;

/** Routes a fault can name; 'any' = the token endpoint and every API call it applies to. */
export const FAULT_ROUTES: readonly FaultRoute[] = ['token', 'list', 'content', 'blob', 'start', 'any'];

const API_CALLS: readonly RouteName[] = ['start', 'stop', 'list', 'content', 'blob'];
const TOKEN_AND_API: readonly RouteName[] = ['token', ...API_CALLS];
/** The calls whose successful answer is a JSON array (reference §3.3, §3.4, §3.5). */
const ARRAY_CALLS: readonly RouteName[] = ['list', 'content', 'blob'];

export interface FaultKindInfo {
  /** Route used when `@ROUTE` is omitted. */
  defaultRoute: FaultRoute;
  /** Requests the fault can hit ('any' matches exactly these). */
  appliesTo: readonly RouteName[];
  /** One line for `simulate --help`. */
  summary: string;
}

/**
 * Every kind, in help order. Defaults: throttling, 5xx, resets, slowness, token expiry and HTML
 * error pages can strike any call ('any' = the next request of any kind); the body-shape faults
 * default to content blobs, where a collector meets most bodies; a disabled subscription is first
 * noticed on the content listing.
 */
export const FAULT_KINDS: Readonly<Record<FaultKind, FaultKindInfo>> = {
  '429': { defaultRoute: 'any', appliesTo: TOKEN_AND_API, summary: 'HTTP 429 AF429 (token endpoint: Entra 429); Retry-After only with --retry-after' },
  '403-AF429': { defaultRoute: 'any', appliesTo: TOKEN_AND_API, summary: 'HTTP 403 AF429, the documented throttling answer (token endpoint: Entra 429)' },
  '500': { defaultRoute: 'any', appliesTo: TOKEN_AND_API, summary: 'HTTP 500 AF50000 (token endpoint: Entra server_error)' },
  '503': { defaultRoute: 'any', appliesTo: TOKEN_AND_API, summary: 'HTTP 503 AF50005; Retry-After only with --retry-after' },
  reset: { defaultRoute: 'any', appliesTo: TOKEN_AND_API, summary: 'the connection is destroyed before any answer' },
  truncate: { defaultRoute: 'blob', appliesTo: TOKEN_AND_API, summary: 'the full Content-Length is promised, half the body sent, then the connection cut' },
  slow: { defaultRoute: 'any', appliesTo: TOKEN_AND_API, summary: `waits --slow-ms (default ${DEFAULT_SLOW_MS}), then answers normally` },
  'expire-token': { defaultRoute: 'any', appliesTo: API_CALLS, summary: 'the access token presented is refused as expired (401); API calls only' },
  '404': { defaultRoute: 'blob', appliesTo: TOKEN_AND_API, summary: 'HTTP 404, empty body, no AF code (what a proxy or CDN edge answers)' },
  html: { defaultRoute: 'any', appliesTo: TOKEN_AND_API, summary: 'HTTP 502 with a text/html "Bad Gateway" page' },
  'not-array': { defaultRoute: 'blob', appliesTo: ARRAY_CALLS, summary: 'HTTP 200, a JSON object {"value":[...]} where the API answers an array' },
  'invalid-json': { defaultRoute: 'blob', appliesTo: TOKEN_AND_API, summary: 'HTTP 200 application/json, body not JSON (a byte changed, closing bracket gone)' },
  'subscription-disabled': {
    defaultRoute: 'content',
    appliesTo: ARRAY_CALLS,
    summary: 'AF20023 as if a tenant admin stopped it; after a restart only new content is listed',
  },
};

/** The kinds in help order (status codes, transport, token, then what a proxy or edge answers). */
export const FAULT_KIND_NAMES: readonly FaultKind[] = [
  '429',
  '403-AF429',
  '500',
  '503',
  'reset',
  'truncate',
  'slow',
  'expire-token',
  '404',
  'html',
  'not-array',
  'invalid-json',
  'subscription-disabled',
];

/** Whether `kind` can ever hit a request on `route` (also the rule for what 'any' matches). */
export function faultApplies(kind: FaultKind, route: RouteName): boolean {
  return FAULT_KINDS[kind].appliesTo.includes(route);
}

/**
 * Why `f` can never be served, or null when it is a valid fault. Messages name the valid values.
 * `tenants`: how many tenants the simulator serves (the highest index `f.tenant` may name); without
 * it an index is only checked to be a whole number from 1.
 */
export function faultProblem(f: Pick<Fault, 'kind' | 'route' | 'count' | 'tenant'>, tenants?: number): string | null {
  if (!Object.hasOwn(FAULT_KINDS, f.kind)) return `unknown kind '${String(f.kind)}' (one of ${FAULT_KIND_NAMES.join(', ')})`;
  if (!FAULT_ROUTES.includes(f.route)) return `unknown route '${String(f.route)}' (one of ${FAULT_ROUTES.join(', ')})`;
  if (f.route !== 'any' && !faultApplies(f.kind, f.route)) {
    const ok = FAULT_ROUTES.filter((r) => r === 'any' || faultApplies(f.kind, r));
    return `kind '${f.kind}' cannot hit route '${f.route}' (one of ${ok.join(', ')})`;
  }
  if (!Number.isInteger(f.count) || f.count < 1) return `count must be a positive integer, got ${f.count}`;
  if (f.tenant !== undefined && !validTenantIndex(f.tenant, tenants)) return `tenant must be ${tenantRange(tenants)}, got ${f.tenant}`;
  return null;
}

function validTenantIndex(index: number, tenants: number | undefined): boolean {
  return Number.isSafeInteger(index) && index >= 1 && (tenants === undefined || index <= tenants);
}

function tenantRange(tenants: number | undefined): string {
  if (tenants === undefined) return 'a tenant index, a whole number from 1';
  return tenants === 1 ? 'a tenant index, 1 (the simulator serves one tenant; see --tenants)' : `a tenant index from 1 to ${tenants} (the tenants served)`;
}

/** Settings the text form cannot carry, taken from their own flags (--slow-ms, --retry-after, --tenants). */
export interface FaultSettings {
  delayMs?: number;
  retryAfterSeconds?: number;
  /** How many tenants the simulator serves: a TENANT_INDEX above it is refused. */
  tenants?: number;
}

/**
 * Parse `KIND[@ROUTE][:COUNT][@TENANT_INDEX]` (e.g. `500`, `429@content:3`,
 * `subscription-disabled`, `403-AF429@content:100000@7`, `500@7`). ROUTE defaults per kind
 * (FAULT_KINDS), COUNT to 1; without TENANT_INDEX every tenant's requests are hit. A last
 * `@` part that starts with a digit or a sign is the tenant index (no route is a number, so
 * `500@7` is tenant 7 on the default route). `delayMs` goes to 'slow', `retryAfterSeconds` to
 * '429' and '503'. Returns the fault, or a one-line problem naming the valid values.
 */
export function parseFaultSpec(text: string, settings: FaultSettings = {}): { fault: Fault } | { problem: string } {
  let spec = text.trim();
  let tenant: number | undefined;
  const at = spec.lastIndexOf('@');
  if (at >= 0 && /^[+-]?\d/.test(spec.slice(at + 1))) {
    const indexText = spec.slice(at + 1);
    tenant = /^\d+$/.test(indexText) ? Number(indexText) : NaN;
    if (!validTenantIndex(tenant, settings.tenants)) return { problem: `'${text}': TENANT_INDEX must be ${tenantRange(settings.tenants)}, got '${indexText}'` };
    spec = spec.slice(0, at);
  }
  const m = /^([^@:]*)(?:@([^:]*))?(?::(.*))?$/.exec(spec);
  if (!m) return { problem: `'${text}' is not KIND[@ROUTE][:COUNT][@TENANT_INDEX]` };
  const [, kindText = '', routeText, countText] = m;
  const kind = kindText as FaultKind;
  if (!Object.hasOwn(FAULT_KINDS, kind)) return { problem: `'${text}': unknown kind '${kindText}' (one of ${FAULT_KIND_NAMES.join(', ')})` };
  const route = (routeText ?? FAULT_KINDS[kind].defaultRoute) as FaultRoute;
  let count = 1;
  if (countText !== undefined) {
    count = /^\d+$/.test(countText) ? Number(countText) : NaN;
    if (!(count >= 1 && Number.isSafeInteger(count))) return { problem: `'${text}': COUNT must be a positive integer, got '${countText}'` };
  }
  const problem = faultProblem({ kind, route, count });
  if (problem) return { problem: `'${text}': ${problem}` };
  const fault: Fault = { kind, route, count };
  if (tenant !== undefined) fault.tenant = tenant;
  if (kind === 'slow' && settings.delayMs !== undefined) fault.delayMs = settings.delayMs;
  if ((kind === '429' || kind === '503') && settings.retryAfterSeconds !== undefined) fault.retryAfterSeconds = settings.retryAfterSeconds;
  return { fault };
}

/** The canonical text form of a fault, `KIND@ROUTE:COUNT` or `KIND@ROUTE:COUNT@TENANT_INDEX` (what the ready line reports). */
export function formatFault(f: Fault): string {
  return `${f.kind}@${f.route}:${f.count}${f.tenant !== undefined ? `@${f.tenant}` : ''}`;
}
