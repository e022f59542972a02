/**
 * The Management Activity API operations (reference §3): subscriptions start/stop/list, content
 * listing with window rules and NextPageUri paging, and content blob retrieval. Each handler maps a
 * parsed request to a SimResponse; the HTTP server, faults and counters live in server.ts.
 */
import { ROLES, verifyAccessToken, type SigningKey } from './access-token.ts';
import type { ContentStore } from './content-store.ts';
import { afError, jsonResponse, JSON_CONTENT_TYPE, type SimResponse } from './errors.ts';
import { decodePageToken, encodePageToken } from './paging.ts';
import type { Route } from './routes.ts';
import { isoMs } from '../management-api/dates.ts';
import { resolveWindow } from './time-window.ts';
import { CONTENT_TYPES, type ContentType } from './types.ts';

interface Subscription {
  status: 'enabled' | 'disabled';
  /** Content listed before this time stays hidden: a restart after stop opens a permanent gap (§3.2). */
  visibleFromMs: number;
}

export class Subscriptions {
  /** Insertion order = order first started, which is how `list` reports them. */
  private readonly byType = new Map<ContentType, Subscription>();

  get(ct: ContentType): Subscription | undefined {
    return this.byType.get(ct);
  }

  /** Returns false when it was already enabled (the caller answers AF20024). */
  start(ct: ContentType, nowMs: number): boolean {
    const s = this.byType.get(ct);
    if (s?.status === 'enabled') return false;
    // First start: content from before the subscription is listable (observed backfill, §3.1).
    this.byType.set(ct, { status: 'enabled', visibleFromMs: s ? nowMs : Number.NEGATIVE_INFINITY });
    return true;
  }

  /** Returns false when there is no such subscription (the caller answers AF20022). */
  stop(ct: ContentType): boolean {
    const s = this.byType.get(ct);
    if (!s) return false;
    s.status = 'disabled';
    return true;
  }

  list(): { contentType: ContentType; status: string; webhook: null }[] {
    return [...this.byType].map(([contentType, s]) => ({ contentType, status: s.status, webhook: null }));
  }
}

export interface ApiContext {
  tenantId: string;
  apiUrl: string;
  loginUrl: string;
  /** `${apiUrl}/api/v1.0/${tenantId}/activity/feed` */
  feedRoot: string;
  now(): number;
  store: ContentStore;
  subscriptions: Subscriptions;
  pageSize: number;
  signingKey: SigningKey;
  audiences: readonly string[];
}

export interface ApiRequest {
  route: Extract<Route, { name: 'start' | 'stop' | 'list' | 'content' | 'blob' }>;
  query: Map<string, string>;
  authorization: string | undefined;
  body: string;
  /** fault 'expire-token': treat the presented token as expired */
  forceTokenExpired: boolean;
}

/**
 * A rejected token. The API's exact 401 body is undocumented; the simulator answers with the
 * ASP.NET Web API default body the service is built on, not an AF code, so a collector must react to
 * the HTTP status (refresh the token once, then give up) rather than to a body it cannot rely on.
 */
function unauthorized(ctx: ApiContext, detail: string): SimResponse {
  return {
    status: 401,
    headers: {
      'Content-Type': JSON_CONTENT_TYPE,
      'WWW-Authenticate': `Bearer authorization_uri="${ctx.loginUrl}/${ctx.tenantId}/oauth2/authorize", error="invalid_token", error_description="${detail.replace(/"/g, "'")}"`,
    },
    body: JSON.stringify({ Message: 'Authorization has been denied for this request.' }),
  };
}

function authorize(ctx: ApiContext, req: ApiRequest): SimResponse | null {
  const v = verifyAccessToken(ctx.signingKey, req.authorization, ctx.audiences, ctx.now());
  if ('problem' in v) return unauthorized(ctx, v.detail);
  if (req.forceTokenExpired) return unauthorized(ctx, 'token expired (injected fault)');
  if (v.tid.toLowerCase() !== req.route.tenant.toLowerCase()) {
    return afError(401, 'AF20010', `The tenant ID passed in the URL (${req.route.tenant}) does not match the tenant ID passed in the access token (${v.tid}).`);
  }
  if (!v.roles.includes(ROLES[0]!)) {
    return afError(401, 'AF10001', `The permission set (${v.roles.join(',')}) sent in the request does not include the expected permission.`);
  }
  return null;
}

function contentTypeParam(req: ApiRequest): ContentType | SimResponse {
  const ct = req.query.get('contenttype');
  if (ct === undefined || ct === '') return afError(400, 'AF20001', 'Missing parameter: contentType.');
  // Values are exact (case-sensitive in every sample); only parameter names are case-insensitive.
  if (!(CONTENT_TYPES as readonly string[]).includes(ct)) return afError(400, 'AF20020', `The specified content type is not valid: ${ct}.`);
  return ct as ContentType;
}

function subscriptionGate(ctx: ApiContext, ct: ContentType): SimResponse | null {
  const s = ctx.subscriptions.get(ct);
  if (!s) return afError(400, 'AF20022', `No subscription found for the specified content type: ${ct}.`);
  if (s.status !== 'enabled') return afError(400, 'AF20023', `The subscription was disabled by the tenant admin: ${ct}.`);
  return null;
}

export function handleApi(ctx: ApiContext, req: ApiRequest): SimResponse {
  const denied = authorize(ctx, req);
  if (denied) return denied;
  switch (req.route.name) {
    case 'start':
      return start(ctx, req);
    case 'stop':
      return stop(ctx, req);
    case 'list':
      return jsonResponse(200, ctx.subscriptions.list());
    case 'content':
      return listContent(ctx, req);
    case 'blob':
      return getBlob(ctx, req.route.contentId);
  }
}

function start(ctx: ApiContext, req: ApiRequest): SimResponse {
  const ct = contentTypeParam(req);
  if (typeof ct !== 'string') return ct;
  if (req.body.trim() !== '') {
    let body: unknown;
    try {
      body = JSON.parse(req.body);
    } catch {
      return afError(400, 'AF20002', 'Invalid parameter type: the request body is not JSON.');
    }
    const webhook = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['webhook'] : undefined;
    if (webhook !== undefined && webhook !== null) {
      // Webhooks need the service to call the listener first (§8); the simulator does not, so it
      // refuses them the way the service refuses a webhook it could not validate.
      return afError(400, 'AF20021', 'The webhook endpoint could not be validated: the simulator does not deliver webhooks; poll subscriptions/content.');
    }
  }
  if (!ctx.subscriptions.start(ct, ctx.now())) {
    // Undocumented but real: re-starting an enabled subscription is a 400 (reference §9.1).
    return afError(400, 'AF20024', 'The subscription is already enabled. No property change.');
  }
  return jsonResponse(200, { contentType: ct, status: 'enabled', webhook: null });
}

function stop(ctx: ApiContext, req: ApiRequest): SimResponse {
  const ct = contentTypeParam(req);
  if (typeof ct !== 'string') return ct;
  if (!ctx.subscriptions.stop(ct)) return afError(400, 'AF20022', `No subscription found for the specified content type: ${ct}.`);
  return { status: 200, headers: {}, body: '' };
}

function listContent(ctx: ApiContext, req: ApiRequest): SimResponse {
  const ct = contentTypeParam(req);
  if (typeof ct !== 'string') return ct;
  const gate = subscriptionGate(ctx, ct);
  if (gate) return gate;
  const now = ctx.now();
  const startText = req.query.get('starttime');
  const endText = req.query.get('endtime');
  const w = resolveWindow(startText, endText, now);
  if (!w.ok) return afError(400, w.code, w.message);
  const token = req.query.get('nextpage');
  let after = null;
  if (token !== undefined) {
    after = decodePageToken(token, ct, w.startMs, w.endMs);
    if (!after) return afError(400, 'AF20031', `Invalid nextPage Input: ${token}.`);
  }
  const sub = ctx.subscriptions.get(ct)!;
  const page = ctx.store.list({
    contentType: ct,
    startMs: w.startMs,
    endMs: w.endMs,
    nowMs: now,
    visibleFromMs: sub.visibleFromMs,
    after,
    limit: ctx.pageSize,
  });
  const items = page.items.map((b) => ({
    contentType: b.contentType,
    contentId: b.contentId,
    contentUri: b.contentUri,
    contentCreated: b.contentCreated,
    contentExpiration: b.contentExpiration,
  }));
  const headers: Record<string, string> = {};
  const last = page.items[page.items.length - 1];
  if (page.more && last) {
    // Same window (as the client wrote it, or the resolved default window) + an opaque token
    // (§3.4). No PublisherIdentifier: the doc sample has none; the client must add its own.
    const s = w.explicit ? startText! : isoMs(w.startMs);
    const e = w.explicit ? endText! : isoMs(w.endMs);
    const next = encodePageToken(last, ct, w.startMs, w.endMs);
    headers['NextPageUri'] =
      `${ctx.feedRoot}/subscriptions/content?contentType=${encodeURIComponent(ct)}` +
      `&startTime=${encodeURIComponent(s)}&endTime=${encodeURIComponent(e)}&nextPage=${next}`;
  }
  return jsonResponse(200, items, headers);
}

function getBlob(ctx: ApiContext, contentId: string | null): SimResponse {
  if (contentId === null || contentId === '') return afError(400, 'AF20052', 'Content ID in the URL is invalid.');
  const now = ctx.now();
  const s = ctx.store.get(contentId);
  // Not yet published content does not exist as far as the client can tell.
  if (!s || s.availableAt > now) return afError(404, 'AF20050', `The specified content (${contentId}) doesn't exist.`);
  const gate = subscriptionGate(ctx, s.contentType as ContentType);
  if (gate) return gate; // after a stop "you lose access to available content" (§3.2)
  // ... and after a restart "only content from the restart onward is retrievable" (§3.2): a blob
  // published before it is gone, as far as the client can tell (the service documents no code).
  if (s.availableAt < ctx.subscriptions.get(s.contentType as ContentType)!.visibleFromMs) {
    return afError(404, 'AF20050', `The specified content (${contentId}) doesn't exist.`);
  }
  if (now >= s.expiresMs) {
    return afError(400, 'AF20051', `Content requested with the key ${contentId} has already expired. Content older than 7 days cannot be retrieved.`);
  }
  return { status: 200, headers: { 'Content-Type': JSON_CONTENT_TYPE }, body: s.body };
}

/**
 * The enabled subscriptions a request reads from (fault 'subscription-disabled' stops them): the
 * listing's contentType, the blob's content type (only once published), or every one for the
 * subscriptions list. Other requests, unknown content and disabled subscriptions give none.
 */
export function enabledSubscriptionsOf(ctx: ApiContext, route: ApiRequest['route'], query: Map<string, string>): ContentType[] {
  const enabled = (ct: string | undefined): ContentType[] => {
    if (ct === undefined || !(CONTENT_TYPES as readonly string[]).includes(ct)) return [];
    return ctx.subscriptions.get(ct as ContentType)?.status === 'enabled' ? [ct as ContentType] : [];
  };
  switch (route.name) {
    case 'content':
      return enabled(query.get('contenttype'));
    case 'blob': {
      const s = route.contentId ? ctx.store.get(route.contentId) : undefined;
      return s && s.availableAt <= ctx.now() ? enabled(s.contentType) : [];
    }
    case 'list':
      return ctx.subscriptions.list().flatMap((s) => enabled(s.contentType));
    default:
      return [];
  }
}
