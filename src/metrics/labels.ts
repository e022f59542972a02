/**
 * Label values of the metrics, from what the collector has at hand: pure functions.
 */

/** The `operation` label of an API call, from the `what` its caller gives ApiClient.call. */
export type ApiOperation = 'list' | 'blob' | 'start' | 'stop' | 'subscriptions' | 'other';

/**
 * Maps ApiClient.call's `what` to an operation label: "list Audit.Exchange content …" (listing
 * content, subscriptions/content) → list; "fetch blob …" → blob; "start … subscription" → start;
 * "stop … subscription" → stop; "list subscriptions" → subscriptions. The texts are set by
 * list-content.ts, fetch-blob.ts and subscriptions.ts; anything else is `other`, never a new
 * label (a label per call would grow without bound).
 */
export function apiOperation(what: string): ApiOperation {
  if (what.startsWith('fetch blob')) return 'blob';
  if (what.startsWith('list subscriptions')) return 'subscriptions';
  if (what.startsWith('list ')) return 'list';
  if (what.startsWith('start ')) return 'start';
  if (what.startsWith('stop ')) return 'stop';
  return 'other';
}

/** The `code` label: the HTTP status, or `no_response` when none came (network failure, timeout). */
export function apiCode(status: number): string {
  return status === 0 ? 'no_response' : String(status);
}

/** The `table` label of records whose tag FeedPoller did not count one by one (FeedPoller OTHER_TAGS). */
export const OTHER_TABLE = '_other';

/**
 * The Devo table of a tag, undoing `routing.tag_template` (`cloud.office365.management.{table}` →
 * the last part). A tag the template does not produce (none should) is its own table. Pure; the
 * returned function caches, as a feed has a few dozen tags at most (FeedPoller.MAX_TAGS_COUNTED).
 */
export function tableOfTag(tagTemplate: string, otherTag: string): (tag: string) => string {
  const [head, ...rest] = tagTemplate.split('{table}').map(escapeRegExp);
  // Every {table} in the template is the same table (route.ts replaces them all).
  const re = rest.length === 0 ? undefined : new RegExp(`^${head}(.+?)${rest.join('\\1')}$`, 's');
  const cache = new Map<string, string>();
  return (tag) => {
    if (tag === otherTag) return OTHER_TABLE;
    let t = cache.get(tag);
    if (t === undefined) {
      t = re?.exec(tag)?.[1] ?? tag;
      if (cache.size < 4096) cache.set(tag, t);
    }
    return t;
  };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
