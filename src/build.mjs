#!/usr/bin/env node
/**
 * `npm run build` (also run by `npm install` in a clone, through `prepare`, and by `npm pack`):
 * bundles src/cli.ts and the packages it uses into one ES module, src/.build/cli.mjs, so the CLI
 * starts without transpiling TypeScript (tsx costs ~0.7 s and ~45 MB at every start).
 * src/bin.mjs runs that bundle when it is newer than every source file and falls back to the
 * sources through tsx otherwise, so a failed or stale build never breaks the CLI: this script
 * warns and exits 0 when esbuild is not usable on this machine.
 *
 * Dependencies are bundled too (resolving ~400 files of node_modules at start costs more than
 * parsing one file); `require` is provided for the CommonJS ones.
 */
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

const src = import.meta.dirname;
const outDir = path.join(src, '.build');
const outFile = path.join(outDir, 'cli.mjs');
const tmpFile = `${outFile}.${process.pid}.tmp`;

let esbuild;
try {
  esbuild = await import('esbuild');
} catch (err) {
  process.stderr.write(`m365-forward build: esbuild is not available (${err.message.split('\n')[0]}); the CLI will run its TypeScript through tsx (slower start)\n`);
  process.exit(0);
}

try {
  mkdirSync(outDir, { recursive: true });
  await esbuild.build({
    entryPoints: [path.join(src, 'cli.ts')],
    outfile: tmpFile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
    legalComments: 'none',
    banner: { js: "import { createRequire as __m365CreateRequire } from 'node:module'; const require = __m365CreateRequire(import.meta.url);" },
  });
  // Renamed into place whole: a launcher starting meanwhile sees the old bundle or the new one.
  renameSync(tmpFile, outFile);
} catch (err) {
  rmSync(tmpFile, { force: true });
  process.stderr.write(`m365-forward build: bundling failed (${String(err.message).split('\n')[0]}); the CLI will run its TypeScript through tsx (slower start)\n`);
  process.exit(0);
}
