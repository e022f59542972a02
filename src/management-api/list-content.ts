import { CollectorError } from '../errors.ts';
import type { BlobRef } from '../polling/checkpoint.ts';
import type { ApiClient } from './api-client.ts';
import type { ContentType } from './content-types.ts';
import { formatListTime, parseApiTime } from './dates.ts';

/** How many NextPageUri hops one window may take before we suspect a loop. */
const MAX_PAGES = 10_000;

/**
 * Lists the blobs of one window [start, end), following NextPageUri until a response has none
 * (reference §3.4). The header name is matched case-insensitively, and the older spelling
 * NextPageUrl is accepted too (§9.6). Pages are followed even when a page is empty.
 */
export interface ContentListing {
  blobs: BlobRef[];
  /** Items that cannot be fetched (no usable contentId/contentUri/contentCreated), described. */
  invalid: string[];
}

export async function listContent(
  api: ApiClient,
  contentType: ContentType,
  start: number,
  end: number,
  signal: AbortSignal,
): Promise<ContentListing> {
  const what = `list ${contentType} content ${formatListTime(start)}..${formatListTime(end)}`;
  let url: string | undefined = api.feedUrl('subscriptions/content', {
    contentType,
    startTime: formatListTime(start),
    endTime: formatListTime(end),
  });
  const blobs: BlobRef[] = [];
  const invalid: string[] = [];
  const seenPages = new Set<string>();
  for (let page = 0; url; page++) {
    if (page >= MAX_PAGES || seenPages.has(url)) {
      throw new CollectorError('API_BAD_RESPONSE', `${what}: NextPageUri loops (page ${page})`);
    }
    seenPages.add(url);
    const res = await api.call('GET', url, what, signal);
    const items = parseContentList(res.body, what);
    blobs.push(...items.blobs);
    invalid.push(...items.invalid);
    url = res.headers.get('nextpageuri') ?? res.headers.get('nextpageurl') ?? undefined;
    if (url !== undefined && !/^https:\/\//i.test(url)) {
      throw new CollectorError('API_BAD_RESPONSE', `${what}: NextPageUri is not an absolute https URL: ${url.slice(0, 200)}`);
    }
  }
  return { blobs, invalid };
}

/**
 * Validates a listing page. A page that is not an array fails the call; an item that cannot be
 * fetched is set aside (named, for the caller to count as lost) instead of blocking the whole
 * window on every poll until the content expires.
 */
export function parseContentList(body: unknown, what: string): ContentListing {
  if (!Array.isArray(body)) {
    throw new CollectorError('API_BAD_RESPONSE', `${what}: expected a JSON array of content, got ${body === null ? 'null' : typeof body}`);
  }
  const blobs: BlobRef[] = [];
  const invalid: string[] = [];
  body.forEach((item, i) => {
    const bad = (field: string) => invalid.push(`${what}: item ${i} has no valid ${field}: ${JSON.stringify(item).slice(0, 300)}`);
    if (typeof item !== 'object' || item === null) return bad('object');
    const o = item as Record<string, unknown>;
    if (typeof o.contentId !== 'string' || !o.contentId) return bad('contentId');
    if (typeof o.contentUri !== 'string' || !/^https:\/\//i.test(o.contentUri)) return bad('contentUri');
    if (parseApiTime(o.contentCreated) === undefined) return bad('contentCreated');
    // contentExpiration: honour it when given (never assume 7 days, §4); missing means "unknown".
    const expiration = typeof o.contentExpiration === 'string' && parseApiTime(o.contentExpiration) !== undefined ? o.contentExpiration : '';
    blobs.push({
      contentType: typeof o.contentType === 'string' ? o.contentType : '',
      contentId: o.contentId,
      contentUri: o.contentUri,
      contentCreated: o.contentCreated as string,
      contentExpiration: expiration,
    });
  });
  return { blobs, invalid };
}
