/**
 * Whether the CLI's bundle (src/.build/cli.mjs, src/build.mjs) may run: it exists and is at least
 * as new as every TypeScript source. The one rule for src/bin.mjs (which runs the sources through
 * tsx otherwise) and for the bench (which must measure the bundle, not tsx).
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const src = import.meta.dirname;
export const bundlePath = path.join(src, '.build', 'cli.mjs');

/** Newest modification time of the TypeScript sources under `dir` (ms), skipping the build output. */
function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === '.build') continue;
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** True when the bundle exists and no source is newer (M365_FORWARD_NO_BUNDLE=1: never). */
export function bundleIsCurrent() {
  if (process.env.M365_FORWARD_NO_BUNDLE === '1') return false;
  try {
    return statSync(bundlePath).mtimeMs >= newestSource(src);
  } catch {
    return false; // no bundle yet (or an unreadable source tree): the sources it is
  }
}
