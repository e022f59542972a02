import { createHash } from 'node:crypto';
import { CollectorError } from '../errors.ts';
import type { ApiClient } from './api-client.ts';
import type { ContentType } from './content-types.ts';
import { formatListTime, parseApiTime } from './dates.ts';

/** How many NextPageUri hops one window may take before we suspect a loop. */
const MAX_PAGES = 10_000;

/** A blob as the listing describes it (reference §3.4). */
export interface BlobRef {
  contentType: string;
  contentId: string;
  contentUri: string;
  contentCreated: string;
  /** Empty when the listing gave none (then only the API's answer tells when it expired). */
  contentExpiration: string;
}

/** A listing item that cannot be fetched; `key` identifies it across polls (so it is counted once). */
export interface InvalidItem {
  key: string;
  problem: string;
}

export interface ContentPage {
  blobs: BlobRef[];
  invalid: InvalidItem[];
}

/**
 * Lists the blobs of one window [start, end), one page at a time, following NextPageUri until a
 * response has none (reference §3.4). The header name is matched case-insensitively, and the older
 * spelling NextPageUrl is accepted too (§9.6). Pages are followed even when a page is empty. A
 * NextPageUri on another host than the API's is an error (the token would go there).
 */
export async function* listContentPages(
  api: ApiClient,
  contentType: ContentType,
  start: number,
  end: number,
  signal: AbortSignal,
): AsyncGenerator<ContentPage> {
  const what = `list ${contentType} content ${formatListTime(start)}..${formatListTime(end)}`;
  let url: string | undefined = api.feedUrl('subscriptions/content', {
    contentType,
    startTime: formatListTime(start),
    endTime: formatListTime(end),
  });
  const seenPages = new Set<string>();
  for (let page = 0; url; page++) {
    if (page >= MAX_PAGES || seenPages.has(url)) {
      throw new CollectorError('API_BAD_RESPONSE', `${what}: NextPageUri loops (page ${page})`);
    }
    seenPages.add(url);
    const res = await api.call('GET', url, what, signal);
    yield parseContentList(res.body, what, api);
    url = res.headers.get('nextpageuri') ?? res.headers.get('nextpageurl') ?? undefined;
    if (url !== undefined) {
      const foreign = api.foreignHost(url);
      if (foreign) throw new CollectorError('API_BAD_RESPONSE', `${what}: NextPageUri ${foreign}`);
    }
  }
}

/** All pages of one window at once (for commands and tests; the poller takes pages as they come). */
export async function listContent(api: ApiClient, contentType: ContentType, start: number, end: number, signal: AbortSignal): Promise<ContentPage> {
  const all: ContentPage = { blobs: [], invalid: [] };
  for await (const p of listContentPages(api, contentType, start, end, signal)) {
    all.blobs.push(...p.blobs);
    all.invalid.push(...p.invalid);
  }
  return all;
}

/**
 * Validates a listing page. A page that is not an array fails the call; an item that cannot be
 * fetched is set aside (described, for the caller to count as lost once) instead of blocking the
 * whole window on every poll until the content expires. Descriptions name the field that is
 * wrong, never the item's values beyond its contentId.
 */
export function parseContentList(body: unknown, what: string, api?: Pick<ApiClient, 'foreignHost'>): ContentPage {
  if (!Array.isArray(body)) {
    throw new CollectorError('API_BAD_RESPONSE', `${what}: expected a JSON array of content, got ${body === null ? 'null' : typeof body === 'object' ? 'an object' : typeof body}`);
  }
  const blobs: BlobRef[] = [];
  const invalid: InvalidItem[] = [];
  body.forEach((item, i) => {
    const o = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    const id = typeof o.contentId === 'string' && o.contentId ? o.contentId : undefined;
    const bad = (problem: string) =>
      invalid.push({
        key: `invalid:${id ?? createHash('sha256').update(JSON.stringify(item) ?? 'undefined').digest('base64url').slice(0, 22)}`,
        problem: `${what}: item ${i}${id ? ` (contentId ${id.slice(0, 120)})` : ''} ${problem}`,
      });
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return bad('is not an object');
    if (!id) return bad('has no contentId');
    if (typeof o.contentUri !== 'string') return bad('has no contentUri');
    const foreign = api?.foreignHost(o.contentUri) ?? (/^https:\/\//i.test(o.contentUri) ? undefined : 'is not an https URL');
    if (foreign) return bad(`has a contentUri that ${foreign}`);
    if (parseApiTime(o.contentCreated) === undefined) return bad('has no valid contentCreated');
    // contentExpiration: honour it when given (never assume 7 days, §4); missing means "unknown".
    const expiration = typeof o.contentExpiration === 'string' && parseApiTime(o.contentExpiration) !== undefined ? o.contentExpiration : '';
    blobs.push({
      contentType: typeof o.contentType === 'string' ? o.contentType : '',
      contentId: id,
      contentUri: o.contentUri,
      contentCreated: o.contentCreated as string,
      contentExpiration: expiration,
    });
  });
  return { blobs, invalid };
}
