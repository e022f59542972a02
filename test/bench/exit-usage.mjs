/**
 * Preload for a measured child (`node --import <this> ...`, test/bench/processes.ts): in its
 * 'exit' event the process writes its own CPU and peak memory to $M365_BENCH_USAGE_FILE, so a
 * process that ends on its own (the collector's `run --once`, the floor) is measured to its last
 * instruction without a wrapper binary. Plain JavaScript, so measuring needs no tsx in the child;
 * it adds one exit listener and nothing else.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.env.M365_BENCH_USAGE_FILE;
if (file) {
  process.on('exit', () => {
    const u = process.resourceUsage();
    let vmHwmKiB;
    try {
      const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
      if (m) vmHwmKiB = Number(m[1]);
    } catch {
      // not Linux: maxRSS only
    }
    writeFileSync(file, JSON.stringify({ cpuSeconds: (u.userCPUTime + u.systemCPUTime) / 1e6, userSeconds: u.userCPUTime / 1e6, systemSeconds: u.systemCPUTime / 1e6, maxRssKiB: u.maxRSS, vmHwmKiB }));
  });
}
