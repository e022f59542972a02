import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CollectorError, describeError } from '../errors.ts';
import type { Logger } from '../support/logger.ts';
import type { Health } from './health.ts';
import { formatListen, type ListenAddress } from './listen.ts';

/** What the HTTP server serves: the metrics text and the health decision. */
export interface MetricsEndpoints {
  /** The Prometheus text exposition. */
  metrics(): Promise<string>;
  /** Its Content-Type (prom-client's Registry.contentType). */
  contentType: string;
  health(): Health;
}

export interface MetricsServer {
  /** Where it listens (the port the system chose when 0 was asked: tests). */
  readonly address: ListenAddress;
  /** Stops listening and ends every open connection (keep-alive scrapers included). */
  close(): Promise<void>;
}

/**
 * The metrics HTTP server (node:http): `GET /metrics` (Prometheus text) and `GET /healthz` (200
 * `{"status":"ok"}`, or 503 with the reasons), HEAD too; 404 for any other path, 405 for another
 * method. Bound only to `listen`. Serves nothing but those two bodies: no secret is reachable
 * (metric values and health reasons are names, counts and error texts, which never hold secrets).
 * A failure to listen is one CONFIG_INVALID line naming metrics.listen.
 */
export async function startMetricsServer(listen: ListenAddress, endpoints: MetricsEndpoints, log: Logger): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    void handle(req, res, endpoints, log);
  });
  // A scraper that opens a connection and sends nothing must not hold a socket for long.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.close();
      reject(listenError(err, listen));
    };
    server.once('error', onError);
    server.listen({ host: listen.host, port: listen.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.warn('metrics server error', { error: describeError(err) }));
  const a = server.address() as AddressInfo;
  const address = { host: listen.host, port: a.port };
  log.info('metrics listening', { listen: formatListen(address), paths: ['/metrics', '/healthz'] });
  let closed: Promise<void> | undefined;
  return {
    address,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, endpoints: MetricsEndpoints, log: Logger): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const send = (status: number, type: string, body: string) => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (path !== '/metrics' && path !== '/healthz') return send(404, 'text/plain; charset=utf-8', 'not found: this server answers /metrics and /healthz\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(405, 'text/plain; charset=utf-8', `method ${req.method} not allowed: use GET\n`);
  }
  try {
    if (path === '/metrics') return send(200, endpoints.contentType, await endpoints.metrics());
    const h = endpoints.health();
    return send(h.status === 'ok' ? 200 : 503, 'application/json; charset=utf-8', `${JSON.stringify(h)}\n`);
  } catch (err) {
    // One line, no stack: the scraper shows it, the log keeps it.
    log.warn('metrics request failed', { path, error: describeError(err) });
    if (!res.headersSent) send(500, 'text/plain; charset=utf-8', 'internal error while collecting (see the collector log)\n');
    else res.destroy();
  }
}

/** One line naming metrics.listen, for a port in use, an address not on this machine, a name that does not resolve. */
function listenError(err: NodeJS.ErrnoException, listen: ListenAddress): CollectorError {
  const where = formatListen(listen);
  const why =
    err.code === 'EADDRINUSE'
      ? 'the port is already in use (another process listens there): choose another port'
      : err.code === 'EADDRNOTAVAIL'
        ? 'the address is not one of this machine\'s: use one of its addresses, 127.0.0.1, or 0.0.0.0 for every interface'
        : err.code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges): use a port above 1024'
          : err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN'
            ? 'the host name does not resolve: use an IP address or a name this machine resolves'
            : `${err.code ?? 'error'}: ${err.message.split('\n')[0]}`;
  return new CollectorError('CONFIG_INVALID', `metrics.listen ${where}: cannot listen: ${why}`, { fatal: true, cause: err });
}
