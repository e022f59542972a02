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

/** A fingerprint as `fingerprint()` makes it: 16 base64url characters (96 bits). */
export function isFingerprint(v: unknown): v is string {
  return typeof v === 'string' && FP_SHAPE.test(v);
}

/** An expiry minute the set can hold: a whole minute since the epoch, above 0 and within 32 bits. */
export function isExpiryMinute(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= MAX_MINUTE;
}

const FP_SHAPE = /^[A-Za-z0-9_-]{16}$/;
/** An expiry minute a slot can hold (0 marks an empty slot). */
const MAX_MINUTE = 0xffff_ffff;

/**
 * The fingerprints in an open-addressing hash table of typed arrays (three 32-bit words and the
 * expiry minute per slot, at most half full): about 32 bytes an entry and nothing for the garbage
 * collector to trace. A Map of strings took about 100 bytes an entry, and made the collector's
 * peak memory grow with the backlog it had drained (issue 7 bench: +31 MB from 250,000 to
 * 2,000,000 records). Fingerprints are SHA-256 bits, so their first word is the hash.
 */
export class DoneSet {
  #words: Uint32Array;
  #exp: Uint32Array;
  #mask: number;
  #size = 0;

  constructor(capacity = 16) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.#words = new Uint32Array(cap * 3);
    this.#exp = new Uint32Array(cap);
    this.#mask = cap - 1;
  }

  get size(): number {
    return this.#size;
  }

  has(fp: string): boolean {
    if (!isFingerprint(fp)) return false;
    return this.#find(...fpWords(fp)) >= 0;
  }

  /** Adds (or extends) an entry; `expiresMin` in minutes since the epoch. */
  add(fp: string, expiresMin: number): void {
    if (!isFingerprint(fp)) throw new TypeError('not a content id fingerprint (16 base64url characters)');
    if (!isExpiryMinute(expiresMin)) throw new TypeError(`not an expiry minute: ${expiresMin}`);
    const [a, b, c] = fpWords(fp);
    const at = this.#find(a, b, c);
    if (at >= 0) {
      if (this.#exp[at]! < expiresMin) this.#exp[at] = expiresMin;
      return;
    }
    if ((this.#size + 1) * 2 > this.#exp.length) this.#resize(this.#exp.length * 2);
    this.#place(a, b, c, expiresMin);
  }

  /** Drops entries that expired before `nowMs` (API time); returns how many. */
  prune(nowMs: number): number {
    const now = Math.floor(nowMs / 60_000);
    const exp = this.#exp;
    let expired = 0;
    for (let i = 0; i < exp.length; i++) if (exp[i] !== 0 && exp[i]! < now) expired++;
    if (expired === 0) return 0;
    // Rebuilt from the survivors: simpler than deleting in place from a linear-probing table,
    // and a prune that finds something to drop runs about once a poll.
    let cap = 16;
    while (cap < (this.#size - expired) * 2) cap *= 2;
    this.#rebuild(cap, (e) => e >= now);
    return expired;
  }

  /** Snapshot form: expiry minute → concatenated fingerprints (no per-entry JSON overhead). */
  encode(): Record<string, string> {
    const groups = new Map<number, string[]>();
    const bytes = Buffer.alloc(12);
    for (let i = 0; i < this.#exp.length; i++) {
      const e = this.#exp[i]!;
      if (e === 0) continue;
      bytes.writeUInt32BE(this.#words[i * 3]!, 0);
      bytes.writeUInt32BE(this.#words[i * 3 + 1]!, 4);
      bytes.writeUInt32BE(this.#words[i * 3 + 2]!, 8);
      const fp = bytes.toString('base64url');
      const g = groups.get(e);
      if (g) g.push(fp);
      else groups.set(e, [fp]);
    }
    const out: Record<string, string> = {};
    for (const [e, fps] of groups) out[String(e)] = fps.join('');
    return out;
  }

  /** Reads the snapshot form; returns undefined when it is malformed. */
  static decode(v: unknown): DoneSet | undefined {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    const entries = Object.entries(v as Record<string, unknown>);
    let n = 0;
    for (const [k, fps] of entries) {
      const e = Number(k);
      if (!isExpiryMinute(e) || typeof fps !== 'string' || fps.length % FINGERPRINT_CHARS !== 0) return undefined;
      n += fps.length / FINGERPRINT_CHARS;
    }
    const set = new DoneSet(n);
    for (const [k, fps] of entries) {
      const e = Number(k);
      for (let i = 0; i < (fps as string).length; i += FINGERPRINT_CHARS) {
        const fp = (fps as string).slice(i, i + FINGERPRINT_CHARS);
        if (!isFingerprint(fp)) return undefined;
        set.add(fp, e);
      }
    }
    return set;
  }

  /** The slot holding the fingerprint with these words, or -1. */
  #find(a: number, b: number, c: number): number {
    const words = this.#words;
    const exp = this.#exp;
    for (let i = a & this.#mask; exp[i] !== 0; i = (i + 1) & this.#mask) {
      if (words[i * 3] === a && words[i * 3 + 1] === b && words[i * 3 + 2] === c) return i;
    }
    return -1;
  }

  #place(a: number, b: number, c: number, expiresMin: number): void {
    let i = a & this.#mask;
    while (this.#exp[i] !== 0) i = (i + 1) & this.#mask;
    this.#words[i * 3] = a;
    this.#words[i * 3 + 1] = b;
    this.#words[i * 3 + 2] = c;
    this.#exp[i] = expiresMin;
    this.#size++;
  }

  #resize(cap: number): void {
    this.#rebuild(cap, () => true);
  }

  /** A table of `cap` slots holding the entries whose expiry `keep` accepts. */
  #rebuild(cap: number, keep: (expiresMin: number) => boolean): void {
    const old = { words: this.#words, exp: this.#exp };
    this.#words = new Uint32Array(cap * 3);
    this.#exp = new Uint32Array(cap);
    this.#mask = cap - 1;
    this.#size = 0;
    for (let i = 0; i < old.exp.length; i++) {
      const e = old.exp[i]!;
      if (e !== 0 && keep(e)) this.#place(old.words[i * 3]!, old.words[i * 3 + 1]!, old.words[i * 3 + 2]!, e);
    }
  }
}

/** The 96 bits of a (valid) fingerprint as three big-endian 32-bit words: `encode` in reverse. */
function fpWords(fp: string): [number, number, number] {
  const b = Buffer.from(fp, 'base64url');
  return [b.readUInt32BE(0), b.readUInt32BE(4), b.readUInt32BE(8)];
}
