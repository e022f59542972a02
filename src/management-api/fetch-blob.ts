import { CollectorError } from '../errors.ts';
import type { ApiClient } from './api-client.ts';

/**
 * Downloads one content blob: a JSON array of audit records (reference §3.5). Anything but an
 * array of objects is a bad response naming the blob and the offending element.
 */
export async function fetchBlob(api: ApiClient, contentUri: string, contentId: string, signal: AbortSignal): Promise<Record<string, unknown>[]> {
  const what = `fetch blob ${contentId}`;
  const res = await api.call('GET', contentUri, what, signal);
  const body = res.body;
  if (!Array.isArray(body)) {
    throw new CollectorError('API_BAD_RESPONSE', `${what}: expected a JSON array of records, got ${body === null ? 'null' : typeof body}`);
  }
  body.forEach((r, i) => {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) {
      throw new CollectorError('API_BAD_RESPONSE', `${what}: element ${i} is not a JSON object: ${JSON.stringify(r).slice(0, 200)}`);
    }
  });
  return body as Record<string, unknown>[];
}
