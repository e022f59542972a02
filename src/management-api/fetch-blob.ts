import { CollectorError } from '../errors.ts';
import type { ApiClient } from './api-client.ts';

/**
 * Downloads one content blob: a JSON array of audit records (reference §3.5). Anything but an
 * array of objects is a bad response naming the blob and the offending element.
 */
export async function fetchBlob(api: ApiClient, contentUri: string, contentId: string, signal: AbortSignal): Promise<Record<string, unknown>[]> {
  const what = `fetch blob ${contentId}`;
  const records: Record<string, unknown>[] = [];
  // No paging is documented for blobs, but Beats honours NextPageUri here "just in case"
  // (reference §3.5): a page left unread would be records silently missing.
  let url: string | undefined = contentUri;
  for (let page = 0; url; page++) {
    if (page >= 1000) throw new CollectorError('API_BAD_RESPONSE', `${what}: NextPageUri loops`);
    const res = await api.call('GET', url, what, signal);
    const body = res.body;
    if (!Array.isArray(body)) {
      throw new CollectorError('API_BAD_RESPONSE', `${what}: expected a JSON array of records, got ${body === null ? 'null' : typeof body}`);
    }
    body.forEach((r, i) => {
      if (typeof r !== 'object' || r === null || Array.isArray(r)) {
        throw new CollectorError('API_BAD_RESPONSE', `${what}: element ${i} is not a JSON object: ${JSON.stringify(r).slice(0, 200)}`);
      }
      records.push(r as Record<string, unknown>);
    });
    const next = res.headers.get('nextpageuri') ?? res.headers.get('nextpageurl');
    url = next && next !== url ? next : undefined;
  }
  return records;
}
