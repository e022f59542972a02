import type https from 'node:https';
import fetch, { type Response } from 'node-fetch';
import type { TokenProvider } from '../auth/token-provider.ts';
import { CollectorError, describeError } from '../errors.ts';
import { backoffDelay } from '../polling/backoff.ts';
import type { Logger } from '../support/logger.ts';
import { sleep, timeoutSignal } from '../support/sleep.ts';
import { AF_CODES, classifyApiError, type ErrorAction } from './af-codes.ts';

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
  body: unknown;
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
  /** Called with the server's Date header of each response (clock-skew measurement). */
  onServerDate?: (serverMs: number) => void;
}

export class ApiClient {
  /** Throttled responses (429, 403 AF429) this tenant got, retried or not: shown in status records. */
  readonly stats = { throttled: 0, retried: 0 };
  constructor(readonly opts: ApiClientOptions) {}

  /** `${apiUrl}/api/v1.0/${tenant}/activity/feed/${op}` with query parameters. */
  feedUrl(op: string, query: Record<string, string> = {}): string {
    const u = new URL(`${this.opts.apiUrl}/api/v1.0/${this.opts.tenantId}/activity/feed/${op}`);
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
    return u.toString();
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
   */
  async call(
    method: 'GET' | 'POST',
    url: string,
    what: string,
    signal: AbortSignal,
    acceptError?: (status: number, afCode: string | undefined) => boolean,
  ): Promise<ApiResponse> {
    const target = this.withPublisher(url);
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      let err: CollectorError;
      const t = timeoutSignal(signal, this.opts.timeoutMs, what);
      try {
        const token = await this.opts.tokens.getToken({ forceRefresh: refreshed && attempt > 0 });
        const res = await fetch(target, {
          method,
          headers: {
            Authorization: `Bearer ${token}`,
            Accept: 'application/json',
            ...(method === 'POST' ? { 'Content-Type': 'application/json; charset=utf-8' } : {}),
          },
          body: method === 'POST' ? '' : undefined,
          agent: this.opts.agent,
          signal: t.signal,
        });
        const parsed = await readResponse(res, what);
        const date = Date.parse(res.headers.get('date') ?? '');
        if (Number.isFinite(date)) this.opts.onServerDate?.(date);
        if (res.status >= 200 && res.status < 300) return parsed;
        const af = afCode(parsed.body);
        if (acceptError?.(res.status, af)) return parsed;
        err = apiError(res.status, af, parsed.body, what, res.headers.get('retry-after'));
        if (res.status === 401 && !refreshed) {
          refreshed = true; // the token may have expired early or been revoked: one fresh token, then judge
          continue;
        }
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        if (e instanceof CollectorError) {
          if (e.fatal) throw e;
          err = e;
        } else {
          // Network failures: resets, timeouts, refused connections, TLS errors.
          const m = describeError(e);
          const tlsProblem = /certificate|self[- ]signed|CERT_|UNABLE_TO/i.test(m + String((e as { code?: string }).code));
          err = new CollectorError('API_UNAVAILABLE', `${what}: ${m}${tlsProblem ? ' (TLS: set api.ca_file to the CA that signs this server, e.g. a TLS-inspecting proxy)' : ''}`, { fatal: tlsProblem, cause: e });
          if (tlsProblem) throw err;
        }
      } finally {
        t.done();
      }
      if (err.code === 'API_THROTTLED') this.stats.throttled++;
      // Only transient failures are retried here; subscribe / gone / window go back to the caller at once.
      const transient = !(err instanceof ApiCallError) || ['retry', 'throttled', 'reauth'].includes(err.action);
      if (err.fatal || !transient || attempt + 1 >= this.opts.maxAttempts) throw err;
      this.stats.retried++;
      const delay = backoffDelay(attempt, {
        baseMs: err.code === 'API_THROTTLED' ? 5000 : 1000,
        maxMs: err.code === 'API_THROTTLED' ? 120_000 : 30_000,
        retryAfterSeconds: err.retryAfterSeconds,
      });
      this.opts.log.warn('API call failed; retrying', { call: what, attempt: attempt + 1, delayMs: delay, error: describeError(err) });
      await sleep(delay, signal);
    }
  }
}

async function readResponse(res: Response, what: string): Promise<ApiResponse> {
  const text = await res.text().catch((e: Error) => {
    throw new CollectorError('API_BAD_RESPONSE', `${what}: response body broke off (${e.message})`);
  });
  const headers = new Map<string, string>();
  res.headers.forEach((v, k) => headers.set(k.toLowerCase(), v));
  let body: unknown = undefined;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      // A 2xx with a broken body is a transient failure (truncated transfer); an error page is reported as text.
      if (res.status >= 200 && res.status < 300) {
        throw new CollectorError('API_BAD_RESPONSE', `${what}: HTTP ${res.status} with a body that is not valid JSON (${text.length} bytes, starts ${JSON.stringify(text.slice(0, 60))})`);
      }
      body = text.slice(0, 500);
    }
  }
  return { status: res.status, headers, body };
}

function afCode(body: unknown): string | undefined {
  const code = (body as { error?: { code?: unknown } })?.error?.code;
  return typeof code === 'string' ? code : undefined;
}

function apiError(status: number, af: string | undefined, body: unknown, what: string, retryAfter: string | null): ApiCallError {
  const action = classifyApiError(status, af);
  const serverMsg = (body as { error?: { message?: unknown } })?.error?.message;
  const meaning = af && AF_CODES[af] ? AF_CODES[af].meaning : undefined;
  const detail = [af, meaning, typeof serverMsg === 'string' ? `server said: ${serverMsg}` : typeof body === 'string' ? body : undefined]
    .filter(Boolean)
    .join(' — ');
  const ra = retryAfter !== null && /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) : undefined;
  const code = action === 'throttled' ? 'API_THROTTLED' : action === 'retry' ? 'API_UNAVAILABLE' : action === 'reauth' ? 'AUTH_FAILED' : 'API_ERROR';
  return new ApiCallError(action, code, `${what}: HTTP ${status}${detail ? ` (${detail})` : ''}`, {
    fatal: action === 'fatal',
    apiCode: af,
    status,
    retryAfterSeconds: ra,
  });
}
