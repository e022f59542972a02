import type https from 'node:https';
import fetch from 'node-fetch';
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';

/**
 * MSAL's network client, built on node-fetch and our HTTPS agent, so token requests honour the
 * same custom CA and keep-alive pool as the API calls (DESIGN "Dependencies").
 */
export function createMsalNetworkClient(agent: https.Agent, timeoutMs: number): INetworkModule {
  async function send<T>(method: 'GET' | 'POST', url: string, options?: NetworkRequestOptions, timeout?: number): Promise<NetworkResponse<T>> {
    const res = await fetch(url, {
      method,
      headers: options?.headers,
      body: method === 'POST' ? options?.body : undefined,
      agent,
      signal: AbortSignal.timeout(timeout ?? timeoutMs),
    });
    const text = await res.text();
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => (headers[k.toLowerCase()] = v));
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      // MSAL expects an object; hand it something that names what came back instead of throwing a SyntaxError.
      body = { error: 'invalid_response', error_description: `non-JSON response (HTTP ${res.status}) from ${new URL(url).origin}: ${text.slice(0, 200)}` };
    }
    return { headers, body: body as T, status: res.status };
  }
  return {
    sendGetRequestAsync: (url, options, timeout) => send('GET', url, options, timeout),
    sendPostRequestAsync: (url, options) => send('POST', url, options),
  };
}
