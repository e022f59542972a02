import type { Logger } from '../support/logger.ts';
import type { ListenAddress } from './listen.ts';
import { createCollectorMetrics, type MetricsSource } from './registry.ts';
import { startMetricsServer } from './server.ts';

export { decideHealth, isStalled, type FeedProgress, type Health, type OutputProgress, type StallReason } from './health.ts';
export { formatListen, parseListen, type ListenAddress } from './listen.ts';
export { createCollectorMetrics, feedViews, type CollectorMetrics, type FeedView, type MetricsSource } from './registry.ts';
export { startMetricsServer, type MetricsEndpoints, type MetricsServer } from './server.ts';

/** The metrics of a running collector, served over HTTP. */
export interface RunningMetrics {
  readonly address: ListenAddress;
  /** Stops the server and takes the observers off the collector. */
  close(): Promise<void>;
}

/**
 * Serves a collector's /metrics and /healthz where `metrics.listen` says; returns undefined, and
 * touches nothing, when it is not set (metrics off: no socket, no observer on the hot paths).
 * `listen` overrides the config (tests ask for port 0). Throws CONFIG_INVALID when it cannot listen.
 */
export async function startMetrics(src: MetricsSource, log: Logger, listen: ListenAddress | undefined = src.deps.config.metrics.listen): Promise<RunningMetrics | undefined> {
  if (!listen) return undefined;
  const m = createCollectorMetrics(src, { stallAfterMs: src.deps.config.metrics.stallAfterMs });
  let server;
  try {
    server = await startMetricsServer(listen, { metrics: () => m.registry.metrics(), contentType: m.registry.contentType, health: () => m.health() }, log);
  } catch (err) {
    m.detach();
    throw err;
  }
  return {
    address: server.address,
    async close() {
      m.detach();
      await server.close();
    },
  };
}
