import type https from 'node:https';
import type { TokenProvider } from '../auth/token-provider.ts';
import { CollectorError, describeError } from '../errors.ts';
import { BACKOFF, backoffDelay } from '../polling/backoff.ts';
import type { ApiClock } from '../support/api-clock.ts';
import type { RequestBudget } from '../polling/request-budget.ts';
import type { Logger } from '../support/logger.ts';
import { describeNetworkError } from '../support/network-errors.ts';
import { sleep, timeoutSignal } from '../support/sleep.ts';
import { AF_CODES, classifyApiError, type ErrorAction } from './af-codes.ts';
import { httpRequest, type HttpResponse } from './http-transport.ts';

/** An error response of the API, with the action its AF code / status calls for. */
export class ApiCallError extends CollectorError {
  constructor(
    readonly action: ErrorAction,
    ...args: ConstructorParameters<typeof CollectorError>
  ) {
    super(...args);
  }
}

/**
 * HTTP helper for the Management Activity API: bearer token, PublisherIdentifier on every call
 * (blob downloads included — reference §3, §9.8), timeouts, retries with backoff for transient
 * failures and throttling, and one clear CollectorError for everything else.
 */
export interface ApiResponse {
  status: number;
  headers: Map<string, string>;
  /** The parsed JSON body (undefined when empty), or, for `raw` calls, undefined. */
  body: unknown;
  /** The body's bytes, for `raw` calls (blob downloads: parsed by the record reader, never as a JS string). */
  raw?: Buffer;
}

export interface ApiClientOptions {
  apiUrl: string;
  tenantId: string;
  publisherIdentifier: string;
  tokens: TokenProvider;
  agent: https.Agent;
  timeoutMs: number;
  maxAttempts: number;
  log: Logger;
  /** The tenant's API clock: every response's Date header is fed to it (clock-skew measurement). */
  clock?: ApiClock;
  /** The tenant's request budget, shared by all its content types (every request takes one). */
  budget?: RequestBudget;
}

/**
 * Told of every HTTP request a client makes, once it is over (metrics): the call's `what`, the
 * HTTP status (0: no answer, a network failure or timeout) and the time from sending it to its
 * whole body read, or to the failure (ms).
 */
export type ApiCallObserver = (what: string, status: number, ms: number) => void;

export class ApiClient {
  /** Throttled responses (429, 403 AF429) this tenant got, retried or not: shown in status records. */
  readonly stats = { throttled: 0, retried: 0, requests: 0 };
  /** Set by the metrics (src/metrics/) when they are on; unset, a request pays one property check. */
  observer?: ApiCallObserver;
  readonly #origin: string;
  constructor(readonly opts: ApiClientOptions) {
    this.#origin = new URL(opts.apiUrl).origin;
  }

  /** `${apiUrl}/api/v1.0/${tenant}/activity/feed/${op}` with query parameters. */
  feedUrl(op: string, query: Record<string, string> = {}): string {
    const u = new URL(`${this.opts.apiUrl}/api/v1.0/${this.opts.tenantId}/activity/feed/${op}`);
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
    return u.toString();
  }

  /**
   * The bearer token only ever goes to the configured API host. URLs the API hands us
   * (NextPageUri, contentUri) are otherwise followed verbatim, so a response naming another host
   * (a compromised or misconfigured proxy, a hostile simulator) would otherwise receive the token.
   * Returns undefined when the URL is fine, else the reason.
   */
  foreignHost(url: string): string | undefined {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return 'is not an absolute URL';
    }
    if (u.origin !== this.#origin) return `points at ${u.protocol}//${u.host}, not the configured API host ${this.#origin}; the token is not sent there`;
    return undefined;
  }

  /**
   * Adds PublisherIdentifier unless the URL has it already (in any case: the API matches query
   * names case-insensitively, §3). URLs the API hands us (NextPageUri, contentUri) are otherwise
   * followed verbatim: contentIds contain `$` and must not be re-encoded (§3.4).
   */
  withPublisher(url: string): string {
    if (/[?&]publisheridentifier=/i.test(url)) return url;
    const sep = url.includes('?') ? '&' : '?';
    return `${url}${sep}PublisherIdentifier=${encodeURIComponent(this.opts.publisherIdentifier)}`;
  }

  /**
   * One API call with retries. `what` names the call in errors ("list Audit.Exchange content").
   * Returns the response of a 2xx; throws CollectorError otherwise, with `apiCode` set.
   * `acceptError` lets a caller take certain error responses as answers (start's AF20024).
   * `raw`: keep the body as bytes (blob downloads).
   */
  async call(
    method: 'GET' | 'POST',
    url: string,
    what: string,
    signal: AbortSignal,
    opts: { acceptError?: (status: number, afCode: string | undefined) => boolean; raw?: boolean } = {},
  ): Promise<ApiResponse> {
    const foreign = this.foreignHost(url);
    if (foreign) throw new CollectorError('API_BAD_RESPONSE', `${what}: the URL ${foreign}`, { fatal: true });
    let target = this.withPublisher(url);
    let refreshed = false;
    let hops = 0;
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      // The tenant's budget first: waiting for it is not part of the request's timeout.
      await this.opts.budget?.take(signal);
      let err: CollectorError;
      const t = timeoutSignal(signal, this.opts.timeoutMs, what);
      let sentAt: number | undefined;
      let status = 0;
      try {
        const token = await this.opts.tokens.getToken({ forceRefresh: refreshed && attempt > 0 });
        let res: HttpResponse;
        try {
          this.stats.requests++;
          if (this.observer) sentAt = performance.now();
          // Redirects are ours to judge (never followed with the Authorization header): below.
          res = await httpRequest(target, {
            method,
            headers: {
              Authorization: `Bearer ${token}`,
              Accept: 'application/json',
              ...(method === 'POST' ? { 'Content-Type': 'application/json; charset=utf-8' } : {}),
            },
            agent: this.opts.agent,
            signal: t.signal,
          });
        } catch (e) {
          if (signal.aborted) throw signal.reason;
          const problem = describeNetworkError(e, target);
          throw new CollectorError('API_UNAVAILABLE', `${what}: ${problem.message}`, { fatal: problem.permanent, cause: e });
        }
        status = res.status;
        this.opts.clock?.observeHeader(res.headers.get('date'));
        if (res.status >= 300 && res.status < 400) {
          const location = res.headers.get('location');
          await res.read().catch(() => {});
          let next: URL | undefined;
          try {
            next = location ? new URL(location, target) : undefined;
          } catch {
            next = undefined;
          }
          const foreign = next ? this.foreignHost(next.toString()) : 'names no valid Location';
          if (foreign || !next || ++hops > 5) {
            throw new CollectorError('API_BAD_RESPONSE', `${what}: the API answered HTTP ${res.status} with a redirect that ${foreign ?? 'loops'}: not followed`, { fatal: true, status: res.status });
          }
          target = next.toString();
          attempt--; // a redirect on the API's own host is not a failed attempt
          continue;
        }
        const ok = res.status >= 200 && res.status < 300;
        const parsed = await readResponse(res, what, ok && opts.raw === true);
        if (ok) return parsed;
        const af = afCode(parsed.body);
        if (opts.acceptError?.(res.status, af)) return parsed;
        err = apiError(res, af, parsed.body, what);
        if (res.status === 401 && !refreshed) {
          refreshed = true; // the token may have expired early or been revoked: one fresh token, then judge
          continue;
        }
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        if (!(e instanceof CollectorError)) throw e;
        if (e.fatal) throw e;
        err = e;
      } finally {
        t.done();
        // A request cut short by our own stop is not a failure of the API: not counted.
        if (sentAt !== undefined && (status !== 0 || !signal.aborted)) this.observer?.(what, status, performance.now() - sentAt);
      }
      if (err.code === 'API_THROTTLED') this.stats.throttled++;
      // Only transient failures are retried here; subscribe / not-found / window go back to the caller at once.
      const transient = !(err instanceof ApiCallError) || ['retry', 'throttled', 'reauth'].includes(err.action);
      if (err.fatal || !transient || attempt + 1 >= this.opts.maxAttempts) throw err;
      this.stats.retried++;
      const delay = backoffDelay(attempt, err.code === 'API_THROTTLED' ? BACKOFF.apiThrottled : BACKOFF.apiCall, { retryAfterSeconds: err.retryAfterSeconds });
      // Throttled: the whole tenant holds back, not just this call (the quota is the tenant's).
      if (err.code === 'API_THROTTLED') this.opts.budget?.pause(delay);
      this.opts.log.warn('API call failed; retrying', { call: what, attempt: attempt + 1, delayMs: delay, error: describeError(err) });
      await sleep(delay, signal);
    }
  }
}

async function readResponse(res: HttpResponse, what: string, raw: boolean): Promise<ApiResponse> {
  let bytes: Buffer;
  try {
    bytes = await res.read();
  } catch (e) {
    throw new CollectorError('API_BAD_RESPONSE', `${what}: response body broke off (${(e as Error).message})`);
  }
  const headers = res.headers;
  if (raw) return { status: res.status, headers, body: undefined, raw: bytes };
  let body: unknown = undefined;
  if (bytes.length > 0) {
    try {
      body = JSON.parse(bytes.toString('utf8'));
    } catch {
      // A 2xx with a broken body is a transient failure (truncated transfer, a proxy's page); an
      // error page is described by its type and size. The body is never quoted: it may hold audit data.
      const kind = `${res.headers.get('content-type') ?? 'no content type'}, ${bytes.length} bytes`;
      if (res.status >= 200 && res.status < 300) {
        throw new CollectorError('API_BAD_RESPONSE', `${what}: HTTP ${res.status} with a body that is not valid JSON (${kind})`);
      }
      body = { nonJson: kind };
    }
  }
  return { status: res.status, headers, body };
}

function afCode(body: unknown): string | undefined {
  const code = (body as { error?: { code?: unknown } })?.error?.code;
  return typeof code === 'string' ? code : undefined;
}

function apiError(res: HttpResponse, af: string | undefined, body: unknown, what: string): ApiCallError {
  const status = res.status;
  const action = classifyApiError(status, af);
  const serverMsg = (body as { error?: { message?: unknown } })?.error?.message;
  const nonJson = (body as { nonJson?: string })?.nonJson;
  const meaning = af && AF_CODES[af] ? AF_CODES[af].meaning : undefined;
  const detail = [af, meaning, typeof serverMsg === 'string' ? `server said: ${serverMsg.slice(0, 300)}` : nonJson ? `a non-JSON body (${nonJson})` : undefined]
    .filter(Boolean)
    .join(' — ');
  const retryAfter = res.headers.get('retry-after');
  const ra = retryAfter !== undefined && /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) : undefined;
  const code = action === 'throttled' ? 'API_THROTTLED' : action === 'retry' ? 'API_UNAVAILABLE' : action === 'reauth' ? 'AUTH_FAILED' : 'API_ERROR';
  return new ApiCallError(action, code, `${what}: HTTP ${status}${detail ? ` (${detail})` : ''}`, {
    fatal: action === 'fatal',
    apiCode: af,
    status,
    retryAfterSeconds: ra,
  });
}
