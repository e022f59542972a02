/**
 * Which endpoint a request is for, decided from method and raw path alone (so faults and counters
 * can apply before any work). Paths are split on the raw URL: a contentId's `$` may arrive raw or as
 * `%24` and is decoded only here.
 */

export type RouteName = 'metadata' | 'token' | 'start' | 'stop' | 'list' | 'content' | 'blob' | 'unknown';

export type Route =
  | { name: 'metadata'; kind: 'openid-v2' | 'openid-v1' | 'instance' | 'jwks'; tenant: string }
  | { name: 'token'; version: 'v1' | 'v2'; tenant: string; path: string }
  | { name: 'start' | 'stop' | 'list' | 'content'; tenant: string }
  | { name: 'blob'; tenant: string; contentId: string | null }
  | { name: 'unknown' };

const API_OPS: Record<string, { method: string; name: 'start' | 'stop' | 'list' | 'content' }> = {
  start: { method: 'POST', name: 'start' },
  stop: { method: 'POST', name: 'stop' },
  list: { method: 'GET', name: 'list' },
  content: { method: 'GET', name: 'content' },
};

export function classify(method: string, rawUrl: string): Route {
  const q = rawUrl.indexOf('?');
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const seg = path.split('/').slice(1);
  const n = seg.length;
  const is = (...parts: string[]) => n === parts.length + 1 && parts.every((p, i) => seg[i + 1] === p);

  if (seg[0] === 'api' && (seg[1] === 'v1.0' || seg[1] === 'v1') && n >= 6 && seg[3] === 'activity' && seg[4] === 'feed') {
    const tenant = seg[2]!;
    if (n === 7 && seg[5] === 'subscriptions') {
      const op = API_OPS[seg[6]!];
      if (op && op.method === method) return { name: op.name, tenant };
    }
    if (n === 7 && seg[5] === 'audit' && method === 'GET') {
      let contentId: string | null;
      try {
        contentId = decodeURIComponent(seg[6]!);
      } catch {
        contentId = null;
      }
      return { name: 'blob', tenant, contentId };
    }
    return { name: 'unknown' };
  }

  if (method === 'GET' && n === 3 && seg[0] === 'common' && seg[1] === 'discovery' && seg[2] === 'instance') {
    return { name: 'metadata', kind: 'instance', tenant: 'common' };
  }
  const tenant = seg[0] ?? '';
  if (method === 'GET') {
    if (is('v2.0', '.well-known', 'openid-configuration')) return { name: 'metadata', kind: 'openid-v2', tenant };
    if (is('.well-known', 'openid-configuration')) return { name: 'metadata', kind: 'openid-v1', tenant };
    if (is('discovery', 'v2.0', 'keys') || is('discovery', 'keys')) return { name: 'metadata', kind: 'jwks', tenant };
  }
  if (method === 'POST') {
    if (is('oauth2', 'v2.0', 'token')) return { name: 'token', version: 'v2', tenant, path };
    if (is('oauth2', 'token')) return { name: 'token', version: 'v1', tenant, path };
  }
  return { name: 'unknown' };
}

/** Query parameters with names lower-cased (reference §3: names are matched case-insensitively). */
export function queryParams(rawUrl: string): Map<string, string> {
  const q = rawUrl.indexOf('?');
  const out = new Map<string, string>();
  if (q < 0) return out;
  for (const [k, v] of new URLSearchParams(rawUrl.slice(q + 1))) {
    const key = k.toLowerCase();
    if (!out.has(key)) out.set(key, v);
  }
  return out;
}
