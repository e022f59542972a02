import type { ContentType } from './content-types.ts';
import type { ApiClient } from './api-client.ts';
import { CollectorError } from '../errors.ts';

/** Subscriptions: start (idempotent), stop, list (reference §3.1–3.3). */
export interface Subscription {
  contentType: string;
  status: string;
  webhook: unknown;
}

/**
 * Starts a subscription. HTTP 400 AF20024 "already enabled, no property change" is success:
 * collectors that treat it as a failure work once and then fail forever (§9.1).
 */
export async function startSubscription(api: ApiClient, contentType: ContentType, signal: AbortSignal): Promise<'started' | 'already-enabled'> {
  const res = await api.call('POST', api.feedUrl('subscriptions/start', { contentType }), `start ${contentType} subscription`, signal, { acceptError: (status, af) => status === 400 && af === 'AF20024' });
  return res.status === 400 ? 'already-enabled' : 'started';
}

export async function stopSubscription(api: ApiClient, contentType: ContentType, signal: AbortSignal): Promise<void> {
  await api.call('POST', api.feedUrl('subscriptions/stop', { contentType }), `stop ${contentType} subscription`, signal);
}

export async function listSubscriptions(api: ApiClient, signal: AbortSignal): Promise<Subscription[]> {
  const res = await api.call('GET', api.feedUrl('subscriptions/list'), 'list subscriptions', signal);
  if (!Array.isArray(res.body)) {
    throw new CollectorError('API_BAD_RESPONSE', `list subscriptions: expected a JSON array, got ${typeof res.body}`);
  }
  return res.body.map((s, i) => {
    if (typeof s?.contentType !== 'string' || typeof s?.status !== 'string') {
      throw new CollectorError('API_BAD_RESPONSE', `list subscriptions: item ${i} lacks contentType/status`);
    }
    return { contentType: s.contentType, status: s.status, webhook: s.webhook ?? null };
  });
}
