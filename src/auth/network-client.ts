import type https from 'node:https';
import fetch from 'node-fetch';
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';
import type { ApiClock } from '../support/api-clock.ts';
import { describeNetworkError, type NetworkProblem } from '../support/network-errors.ts';

/**
 * MSAL's network client, built on node-fetch and the tenant's HTTPS agent, so token requests honour
 * the same custom CA and keep-alive pool as the API calls (DESIGN "Dependencies"). It also reads
 * each answer's `Date` header into the tenant's API clock (so the client assertion is dated in the
 * API's time even before the first API call), and remembers why a request failed: MSAL reports
 * every connection problem as a generic `endpoints_resolution_error`, the operator needs to read
 * "refused", "not trusted" or "expired" instead.
 */
export interface MsalNetworkClient extends INetworkModule {
  /** The last connection failure, until a request succeeds again. */
  lastProblem(): NetworkProblem | undefined;
}

export function createMsalNetworkClient(agent: https.Agent, timeoutMs: number, clock?: ApiClock): MsalNetworkClient {
  let problem: NetworkProblem | undefined;
  async function send<T>(method: 'GET' | 'POST', url: string, options?: NetworkRequestOptions, timeout?: number): Promise<NetworkResponse<T>> {
    let res;
    try {
      res = await fetch(url, {
        method,
        headers: options?.headers,
        body: method === 'POST' ? options?.body : undefined,
        agent,
        signal: AbortSignal.timeout(timeout ?? timeoutMs),
        // Never follow a redirect with the client secret or assertion: MSAL gets the 3xx and fails.
        redirect: 'manual',
      });
    } catch (err) {
      problem = describeNetworkError(err, url);
      throw err;
    }
    problem = undefined;
    clock?.observeHeader(res.headers.get('date'));
    const text = await res.text();
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => (headers[k.toLowerCase()] = v));
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      // MSAL expects an object; hand it one that names what came back instead of throwing a
      // SyntaxError. The body itself is not quoted: an HTML error page tells nothing useful.
      body = { error: 'invalid_response', error_description: `a response that is not JSON (HTTP ${res.status}, ${res.headers.get('content-type') ?? 'no content type'}) from ${new URL(url).origin}` };
    }
    return { headers, body: body as T, status: res.status };
  }
  return {
    sendGetRequestAsync: (url, options, timeout) => send('GET', url, options, timeout),
    sendPostRequestAsync: (url, options) => send('POST', url, options),
    lastProblem: () => problem,
  };
}
