/**
 * When blobs were created and when they become listable. Pure, seeded.
 *
 * contentCreated falls in [anchor - span, anchor - 1 min]. A late blob (reference §4 "Latency":
 * content can appear well after it was created) is listed at contentCreated + U(lateMinutes), and
 * its contentCreated is chosen so that this is never after the anchor: everything generated is
 * listable by the anchor time.
 *
 * Late release is the exception (§4 "Latency": content hours to days late): those blobs are all
 * listed at one release time after the anchor, dated each its own duration before it, so a
 * collector that already polled past their contentCreated must go back for them.
 */
import type { Rng } from './prng.ts';

export interface BlobTimes {
  createdMs: number;
  availableAt: number;
  late: boolean;
}

export interface ScheduleOptions {
  anchor: number;
  spanHours: number;
  lateFraction: number;
  lateMinutes: [number, number];
  /** `fraction` of blobs listed at `releaseAt`, contentCreated `byMs[k]` before it (in turn). */
  lateRelease?: { fraction: number; byMs: readonly number[]; releaseAt: number };
}

const MINUTE = 60_000;

export function planBlobTimes(rng: Rng, count: number, o: ScheduleOptions): BlobTimes[] {
  const span = Math.max(o.spanHours * 3_600_000, 2 * MINUTE);
  const lower = o.anchor - span;
  const out: BlobTimes[] = [];
  const release = o.lateRelease && o.lateRelease.fraction > 0 && o.lateRelease.byMs.length > 0 ? o.lateRelease : null;
  let released = 0;
  for (let i = 0; i < count; i++) {
    if (release && rng.next() < release.fraction) {
      const by = release.byMs[released++ % release.byMs.length]!;
      out.push({ createdMs: release.releaseAt - by, availableAt: release.releaseAt, late: true });
      continue;
    }
    const late = o.lateFraction > 0 && rng.next() < o.lateFraction;
    if (!late) {
      const createdMs = lower + Math.floor(rng.next() * (span - MINUTE));
      out.push({ createdMs, availableAt: createdMs, late });
      continue;
    }
    const [lo, hi] = o.lateMinutes;
    let delay = Math.round((lo + rng.next() * Math.max(0, hi - lo)) * MINUTE);
    delay = Math.min(delay, span - MINUTE); // a delay longer than the span cannot fit before the anchor
    const upper = o.anchor - Math.max(MINUTE, delay);
    const createdMs = lower + Math.floor(rng.next() * Math.max(1, upper - lower));
    out.push({ createdMs, availableAt: Math.min(createdMs + delay, o.anchor), late });
  }
  return out;
}

/** Records per blob: 1..80, mostly small, as real feeds are (many blobs of a few records). */
export function blobSize(rng: Rng): number {
  const r = rng.next();
  return 1 + Math.floor(80 * r * r);
}
