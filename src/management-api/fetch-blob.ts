import { CollectorError } from '../errors.ts';
import type { ApiClient } from './api-client.ts';

/**
 * Downloads one content blob (reference §3.5): the bytes of a JSON array of audit records, read by
 * the record reader (src/record/), never turned into a JS string. No paging is documented for
 * blobs, but Beats honours NextPageUri here "just in case": a page left unread would be records
 * silently missing, so every page is returned.
 */
export async function fetchBlobPages(api: ApiClient, contentUri: string, contentId: string, signal: AbortSignal): Promise<Buffer[]> {
  const what = `fetch blob ${contentId}`;
  const pages: Buffer[] = [];
  let url: string | undefined = contentUri;
  const seen = new Set<string>();
  while (url) {
    if (seen.has(url) || pages.length >= 1000) throw new CollectorError('API_BAD_RESPONSE', `${what}: NextPageUri loops`);
    seen.add(url);
    const res = await api.call('GET', url, what, signal, { raw: true });
    pages.push(res.raw ?? Buffer.alloc(0));
    url = res.headers.get('nextpageuri') ?? res.headers.get('nextpageurl') ?? undefined;
  }
  return pages;
}
