/**
 * Opaque `nextPage` tokens for content listing (reference §3.4 "Pagination"). Stateless: a token
 * names the last blob of the previous page in listing order (availableAt, contentId) and is bound to
 * the content type and window it was issued for, so a token from another query is AF20031.
 */
import { createHash } from 'node:crypto';

export interface PageCursor {
  availableAt: number;
  contentId: string;
}

function binding(contentType: string, startMs: number, endMs: number): string {
  return createHash('sha256').update(`${contentType}|${startMs}|${endMs}`).digest('hex').slice(0, 12);
}

export function encodePageToken(cursor: PageCursor, contentType: string, startMs: number, endMs: number): string {
  const raw = `${cursor.availableAt}|${cursor.contentId}|${binding(contentType, startMs, endMs)}`;
  return Buffer.from(raw, 'utf8').toString('base64url');
}

/** The cursor, or null when the token is not one this query could have produced. */
export function decodePageToken(token: string, contentType: string, startMs: number, endMs: number): PageCursor | null {
  if (!/^[A-Za-z0-9_-]+$/.test(token)) return null;
  const raw = Buffer.from(token, 'base64url').toString('utf8');
  const m = /^(\d{1,16})\|([^|]+)\|([0-9a-f]{12})$/.exec(raw);
  if (!m) return null;
  if (m[3] !== binding(contentType, startMs, endMs)) return null;
  return { availableAt: Number(m[1]), contentId: m[2]! };
}

/** Listing order: by availableAt, then contentId (reference §3.4 "Order": as blobs became available). */
export function compareListing(a: PageCursor, b: PageCursor): number {
  if (a.availableAt !== b.availableAt) return a.availableAt - b.availableAt;
  return a.contentId < b.contentId ? -1 : a.contentId > b.contentId ? 1 : 0;
}
