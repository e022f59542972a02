import { createHash } from 'node:crypto';

/**
 * The content ids a feed has finished with (delivered, or counted lost), each kept until its
 * blob's contentExpiration: re-listing (the overlap on every poll, the periodic sweep of the whole
 * retention) and restarts use it to skip blobs already done, so changing `polling.overlap` never
 * re-sends anything (DESIGN guarantee 3). Pruned by expiry, never by the records' CreationTime
 * (reference management-api.md §9.4).
 *
 * Compact: an id (~80–100 characters, `<ts>$<ts>$audit_exchange$Audit_Exchange$emea0036`) is kept
 * as a 96-bit fingerprint (16 base64url characters of its SHA-256) with its expiry in whole
 * minutes. A tenant listing 50,000 blobs a day per content type holds 350,000 entries per feed
 * (about 20 bytes each in the snapshot). The chance that two ids of one feed's week share a
 * fingerprint is about n²/2^97 ≈ 10^-18 at that size.
 */
export const FINGERPRINT_CHARS = 16;

export function fingerprint(contentId: string): string {
  return createHash('sha256').update(contentId).digest('base64url').slice(0, FINGERPRINT_CHARS);
}

/** Minutes since the epoch: small integers (V8 Smis), and fine enough for expiry. */
export function toMinutes(ms: number): number {
  return Math.ceil(ms / 60_000);
}

export class DoneSet {
  readonly #m = new Map<string, number>();

  get size(): number {
    return this.#m.size;
  }

  has(fp: string): boolean {
    return this.#m.has(fp);
  }

  /** Adds (or extends) an entry; `expiresMin` in minutes since the epoch. */
  add(fp: string, expiresMin: number): void {
    const prev = this.#m.get(fp);
    if (prev === undefined || prev < expiresMin) this.#m.set(fp, expiresMin);
  }

  /** Drops entries that expired before `nowMs` (API time); returns how many. */
  prune(nowMs: number): number {
    const now = Math.floor(nowMs / 60_000);
    let n = 0;
    for (const [fp, exp] of this.#m) {
      if (exp < now) {
        this.#m.delete(fp);
        n++;
      }
    }
    return n;
  }

  /** Snapshot form: expiry minute → concatenated fingerprints (no per-entry JSON overhead). */
  encode(): Record<string, string> {
    const groups = new Map<number, string[]>();
    for (const [fp, exp] of this.#m) {
      const g = groups.get(exp);
      if (g) g.push(fp);
      else groups.set(exp, [fp]);
    }
    const out: Record<string, string> = {};
    for (const [exp, fps] of groups) out[String(exp)] = fps.join('');
    return out;
  }

  /** Reads the snapshot form; returns undefined when it is malformed. */
  static decode(v: unknown): DoneSet | undefined {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    const set = new DoneSet();
    for (const [k, fps] of Object.entries(v as Record<string, unknown>)) {
      const exp = Number(k);
      if (!Number.isInteger(exp) || typeof fps !== 'string' || fps.length % FINGERPRINT_CHARS !== 0) return undefined;
      for (let i = 0; i < fps.length; i += FINGERPRINT_CHARS) set.add(fps.slice(i, i + FINGERPRINT_CHARS), exp);
    }
    return set;
  }
}
