/**
 * The blobs the simulator serves: contentId shapes, expiry, listing filter and order, and the cached
 * JSON body of each blob. No HTTP here.
 */
import { compareListing, type PageCursor } from './paging.ts';
import { isoMs } from '../management-api/dates.ts';
import type { AuditRecord, SimBlob } from './types.ts';

export interface StoredBlob {
  blob: SimBlob;
  createdMs: number;
  expiresMs: number;
  /** serialised body, built on first fetch */
  body?: string;
}

/** `20171014180051748` + 6 digits: the 23-digit timestamp shape of real contentIds (reference §3.4). */
function idTimestamp(ms: number, uniq: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}${p(d.getUTCMilliseconds(), 3)}` +
    p(uniq % 1_000_000, 6)
  );
}

/** e.g. `…$audit_exchange$Audit_Exchange$emea0036`; DLP.All → `…$dlp_all$DLP_All$emea0036`. */
export function makeContentId(contentType: string, createdMs: number, uniq: number, region: string): string {
  const ts = idTimestamp(createdMs, uniq);
  const under = contentType.replace(/\./g, '_');
  return `${ts}$${ts}$${under.toLowerCase()}$${under}$${region}`;
}

export interface ListQuery {
  contentType: string;
  startMs: number;
  endMs: number;
  nowMs: number;
  /** blobs listed before this time are hidden (subscription restarted after a stop) */
  visibleFromMs: number;
  after: PageCursor | null;
  limit: number;
}

export class ContentStore {
  private readonly all: StoredBlob[] = [];
  private readonly byId = new Map<string, StoredBlob>();
  private uniq = 0;

  constructor(
    private readonly apiRoot: string,
    private readonly region: string,
    private readonly expirationMs: number,
    private readonly serialise: (records: AuditRecord[]) => string,
  ) {}

  add(contentType: string, createdMs: number, availableAt: number, records: AuditRecord[]): SimBlob {
    let contentId: string;
    do {
      this.uniq += 1;
      contentId = makeContentId(contentType, createdMs, this.uniq * 7919 + 104_729, this.region);
    } while (this.byId.has(contentId));
    const expiresMs = createdMs + this.expirationMs;
    const blob: SimBlob = {
      contentType,
      contentId,
      contentUri: `${this.apiRoot}/audit/${contentId}`,
      contentCreated: isoMs(createdMs),
      contentExpiration: isoMs(expiresMs),
      availableAt,
      records,
    };
    const stored: StoredBlob = { blob, createdMs, expiresMs };
    this.all.push(stored);
    this.byId.set(contentId, stored);
    return blob;
  }

  blobs(): SimBlob[] {
    return this.all.map((s) => s.blob);
  }

  get(contentId: string): StoredBlob | undefined {
    return this.byId.get(contentId);
  }

  body(s: StoredBlob): string {
    s.body ??= this.serialise(s.blob.records);
    return s.body;
  }

  /**
   * One page of the listing: `start <= contentCreated < end`, listed (`availableAt <= now`), not
   * expired, in (availableAt, contentId) order, after the cursor. `more` says whether another page
   * follows.
   */
  list(q: ListQuery): { items: SimBlob[]; more: boolean } {
    const hits: StoredBlob[] = [];
    for (const s of this.all) {
      const b = s.blob;
      if (b.contentType !== q.contentType) continue;
      if (s.createdMs < q.startMs || s.createdMs >= q.endMs) continue;
      if (b.availableAt > q.nowMs || b.availableAt < q.visibleFromMs) continue;
      if (q.nowMs >= s.expiresMs) continue;
      if (q.after && compareListing(b, q.after) <= 0) continue;
      hits.push(s);
    }
    hits.sort((x, y) => compareListing(x.blob, y.blob));
    return { items: hits.slice(0, q.limit).map((s) => s.blob), more: hits.length > q.limit };
  }
}
