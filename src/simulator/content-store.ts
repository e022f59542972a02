/**
 * The blobs the simulator serves: contentId shapes, expiry, listing filter and order, and the
 * pre-rendered JSON body of each blob. No HTTP here.
 */
import { compareListing, type PageCursor } from './paging.ts';
import { isoMs } from '../management-api/dates.ts';
import type { AuditRecord, SimBlob } from './types.ts';

/** A blob body rendered once: the JSON array bytes served as they are, and how many records it holds. */
export interface BlobBody {
  bytes: Buffer;
  count: number;
}

/**
 * One stored blob. The simulator holds records only as the bytes it serves (a 2M-record tenant
 * would not fit Node's default heap as objects); `records` parses them on demand for tests.
 */
export class StoredBlob implements SimBlob {
  readonly contentUri: string;
  readonly contentCreated: string;
  readonly contentExpiration: string;
  readonly expiresMs: number;

  constructor(
    apiRoot: string,
    readonly contentType: string,
    readonly contentId: string,
    readonly createdMs: number,
    readonly availableAt: number,
    expirationMs: number,
    /** The exact response body: a JSON array of the records. */
    readonly body: Buffer,
    readonly recordCount: number,
  ) {
    this.contentUri = `${apiRoot}/audit/${contentId}`;
    this.expiresMs = createdMs + expirationMs;
    this.contentCreated = isoMs(createdMs);
    this.contentExpiration = isoMs(this.expiresMs);
  }

  get records(): AuditRecord[] {
    return JSON.parse(this.body.toString('utf8')) as AuditRecord[];
  }
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
  /** Per content type, in listing order (availableAt, contentId): a page is a forward scan. */
  private readonly byType = new Map<string, StoredBlob[]>();
  /** Content types with blobs added since their list was last sorted (sorted once, on next use). */
  private readonly unsorted = new Set<string>();
  private uniq = 0;

  constructor(
    private readonly apiRoot: string,
    private readonly region: string,
    private readonly expirationMs: number,
  ) {}

  add(contentType: string, createdMs: number, availableAt: number, body: BlobBody): StoredBlob {
    let contentId: string;
    do {
      this.uniq += 1;
      contentId = makeContentId(contentType, createdMs, this.uniq * 7919 + 104_729, this.region);
    } while (this.byId.has(contentId));
    const stored = new StoredBlob(this.apiRoot, contentType, contentId, createdMs, availableAt, this.expirationMs, body.bytes, body.count);
    this.all.push(stored);
    this.byId.set(contentId, stored);
    let list = this.byType.get(contentType);
    if (!list) this.byType.set(contentType, (list = []));
    list.push(stored);
    this.unsorted.add(contentType);
    return stored;
  }

  blobs(): StoredBlob[] {
    return [...this.all];
  }

  get(contentId: string): StoredBlob | undefined {
    return this.byId.get(contentId);
  }

  /**
   * One page of the listing: `start <= contentCreated < end`, listed (`availableAt <= now`), not
   * expired, in (availableAt, contentId) order, after the cursor. `more` says whether another page
   * follows.
   */
  list(q: ListQuery): { items: StoredBlob[]; more: boolean } {
    const sorted = this.byType.get(q.contentType) ?? [];
    if (this.unsorted.delete(q.contentType)) sorted.sort(compareListing);
    const items: StoredBlob[] = [];
    for (let i = q.after ? firstAfter(sorted, q.after) : 0; i < sorted.length; i++) {
      const s = sorted[i]!;
      if (s.availableAt > q.nowMs) break; // sorted by availableAt: nothing further is listed yet
      if (s.createdMs < q.startMs || s.createdMs >= q.endMs) continue;
      if (s.availableAt < q.visibleFromMs) continue;
      if (q.nowMs >= s.expiresMs) continue;
      if (items.length === q.limit) return { items, more: true };
      items.push(s);
    }
    return { items, more: false };
  }
}

/** Index of the first entry of `sorted` (listing order) that comes after `cursor`. */
function firstAfter(sorted: readonly PageCursor[], cursor: PageCursor): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareListing(sorted[mid]!, cursor) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
