/**
 * What to do about an API error, by AF code and HTTP status (reference §5, §9). A data table, so
 * the policy is visible in one place; the message is Microsoft's meaning, paraphrased.
 */
export type ErrorAction =
  | 'retry' // transient: back off and try the same call again
  | 'throttled' // quota: back off longer (Retry-After when given)
  | 'reauth' // token rejected: get a fresh token and retry
  | 'subscribe' // no subscription (AF20022) / disabled (AF20023): start it, then list again
  | 'not-found' // blob not there (AF20050, plain 404): may appear later; retried a few times over minutes
  | 'expired' // blob expired (AF20051): gone for good, a gap
  | 'gone' // blob id refused (AF20052): can never be fetched
  | 'window' // window rejected (AF20055/AF20030): usually clock skew; replan next poll
  | 'fatal'; // configuration or permission problem: retrying cannot help

export const AF_CODES: Record<string, { action: ErrorAction; meaning: string }> = {
  AF10001: { action: 'fatal', meaning: 'the token lacks the ActivityFeed.Read permission (grant it and give admin consent)' },
  AF20001: { action: 'fatal', meaning: 'a required parameter is missing' },
  AF20002: { action: 'fatal', meaning: 'a parameter has an invalid type' },
  AF20010: { action: 'fatal', meaning: 'the tenant in the URL is not the tenant of the token (check tenant_id)' },
  AF20011: { action: 'fatal', meaning: 'the tenant does not exist or was deleted' },
  AF20012: { action: 'fatal', meaning: 'the tenant is not configured for the API (licence, or unified audit logging off)' },
  AF20013: { action: 'fatal', meaning: 'the tenant id in the URL is not a GUID' },
  AF20020: { action: 'fatal', meaning: 'invalid content type' },
  AF20022: { action: 'subscribe', meaning: 'no subscription for this content type' },
  AF20023: { action: 'subscribe', meaning: 'the subscription is disabled (also seen when audit logging is off)' },
  AF20030: { action: 'window', meaning: 'invalid time window (older code)' },
  AF20031: { action: 'retry', meaning: 'invalid nextPage value: the listing restarts' },
  AF20050: { action: 'not-found', meaning: 'the content does not exist' },
  AF20051: { action: 'expired', meaning: 'the content has expired (older than its contentExpiration)' },
  AF20052: { action: 'gone', meaning: 'the content id in the URL is invalid' },
  AF20055: { action: 'window', meaning: 'invalid time window: ≤ 24 h, start before end, start at most 7 days back (often local clock skew)' },
  AF429: { action: 'throttled', meaning: 'too many requests for this PublisherIdentifier' },
  AF50000: { action: 'retry', meaning: 'internal error, retry' },
  AF50005: { action: 'retry', meaning: 'internal error, retry' },
  AF50006: { action: 'retry', meaning: 'internal error, retry' },
};

/** Classifies a failed response. Unknown AF codes fall back on the HTTP status. */
export function classifyApiError(status: number, afCode: string | undefined): ErrorAction {
  if (afCode === 'AF20024') return 'retry'; // never an error for callers other than start (handled there)
  if (afCode && AF_CODES[afCode]) return AF_CODES[afCode].action;
  if (status === 429) return 'throttled';
  if (status === 401) return 'reauth';
  if (status === 408 || status >= 500) return 'retry';
  // A 404 without an AF code comes from something between us and the API (proxy, CDN edge) or
  // from a blob that is not published yet: worth a few tries, not an immediate loss.
  if (status === 404) return 'not-found';
  return 'fatal';
}
