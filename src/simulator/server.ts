/**
 * The HTTPS server: routes each request to the tenant its path names (tenants.ts), counts it,
 * applies injected faults and that tenant's quota, and writes the SimResponse the handlers
 * produce. It tracks every socket (keep-alive included) and every pending slow-fault timer so
 * close() leaves nothing running.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { enabledSubscriptionsOf, handleApi } from './api-routes.ts';
import { afError, jsonResponse, notFound, type SimResponse } from './errors.ts';
import { DEFAULT_SLOW_MS } from './fault-spec.ts';
import { faultResponse, mangleBody, type FaultQueue } from './faults.ts';
import { classify, queryParams, type Route, type RouteName } from './routes.ts';
import type { TenantDirectory, TenantState } from './tenants.ts';
import { instanceDiscovery, jwksResponse, openIdConfiguration, tokenRequest } from './token-endpoint.ts';
import type { ContentType, SimStats } from './types.ts';

const MAX_BODY_BYTES = 1024 * 1024;
const API_ROUTES: ReadonlySet<RouteName> = new Set(['start', 'stop', 'list', 'content', 'blob']);

export interface ServerDeps {
  tls: { key: string; cert: string };
  now(): number;
  faults: FaultQueue;
  /** Every API call is answered this many ms after it arrived (0: at once). */
  latencyMs: number;
  /** Every request, all tenants together (each tenant also counts its own). */
  stats: SimStats;
  /** Filled in once the port is known (URLs depend on it). */
  tenants(): TenantDirectory;
  onUnknownRequest(method: string, url: string): void;
}

export class SimServer {
  readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  private closing = false;

  constructor(private readonly deps: ServerDeps) {
    this.server = createServer({ key: deps.tls.key, cert: deps.tls.cert }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        // A simulator bug must be visible, not look like an API answer.
        process.stderr.write(`[m365-sim] internal error on ${req.method} ${req.url}: ${(err as Error)?.stack ?? String(err)}\n`);
        if (!res.headersSent && !res.destroyed) this.send(res, afError(500, 'AF50000', 'An internal error occurred. Retry the request.'), false);
      });
    });
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    // A client that vanishes mid-handshake must not crash the process.
    this.server.on('tlsClientError', () => {});
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const addr = this.server.address();
        if (addr === null || typeof addr === 'string') return reject(new Error('simulator: no TCP address after listen'));
        resolve(addr.port);
      });
    });
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const t of this.timers) {
      clearTimeout(t.timer);
      t.resolve();
    }
    this.timers.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = { timer: setTimeout(() => { this.timers.delete(entry); resolve(); }, ms), resolve };
      this.timers.add(entry);
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const route = classify(method, url);
    const { stats } = this.deps;
    stats.requests += 1;
    stats.byRoute[route.name] = (stats.byRoute[route.name] ?? 0) + 1;

    const body = await readBody(req);
    if (body === null) return this.send(res, jsonResponse(413, { error: { code: 'RequestTooLarge', message: `Body over ${MAX_BODY_BYTES} bytes.` } }), false);

    if (route.name === 'unknown') {
      stats.unknownRequests += 1;
      this.deps.onUnknownRequest(method, url);
      return this.send(res, notFound(method, url.split('?')[0]!), false);
    }

    const query = queryParams(url);
    // The tenant the path names, if it is one of ours; a request for another is answered by
    // tenant 1's handlers, whose tenant checks refuse it (AADSTS90002, AF20010) as before.
    const directory = this.deps.tenants();
    const tenant = route.name === 'metadata' && route.kind === 'instance' ? directory.forDiscovery(query) : directory.find(route.tenant);
    const served = tenant ?? directory.first;
    if (tenant) {
      tenant.stats.requests += 1;
      tenant.stats.byRoute[route.name] = (tenant.stats.byRoute[route.name] ?? 0) + 1;
    }
    const publisherId = query.get('publisheridentifier');
    const isApi = API_ROUTES.has(route.name);
    if (isApi) {
      if (!publisherId) stats.missingPublisherIdentifier += 1;
      const arrived = this.deps.now();
      stats.firstApiRequestMs ??= arrived;
      stats.lastApiRequestMs = arrived;
      // The API's own answer time (latencyMs): a tracked timer, so other requests, the token
      // endpoint among them, are served meanwhile and close() does not wait for it.
      if (this.deps.latencyMs > 0) {
        await this.sleep(this.deps.latencyMs);
        if (this.closing) return;
      }
    }

    let truncate = false;
    let forceTokenExpired = false;
    let mangle: 'not-array' | 'invalid-json' | null = null;
    // 'subscription-disabled' waits for a request that reads an enabled subscription (of a tenant
    // of ours), so an operator's fault is not spent on a content type the collector has not
    // started yet.
    const read = () => (tenant ? this.subscriptionsRead(tenant, route, query) : []);
    const fault = this.deps.faults.take(route.name, (f) => f.kind !== 'subscription-disabled' || read().length > 0, tenant?.index);
    if (fault) {
      stats.faultsServed += 1;
      if (tenant) tenant.stats.faultsServed += 1;
      switch (fault.kind) {
        case 'reset':
          req.socket.destroy();
          return;
        case 'slow':
          await this.sleep(fault.delayMs ?? DEFAULT_SLOW_MS);
          if (this.closing) return;
          break;
        case 'truncate':
          truncate = true;
          break;
        case 'expire-token':
          forceTokenExpired = true;
          break;
        case 'not-array':
        case 'invalid-json':
          mangle = fault.kind;
          break;
        case 'subscription-disabled': {
          // As if a tenant admin stopped it just now: this request already meets AF20023 (§3.2).
          for (const ct of read()) tenant?.api.subscriptions.stop(ct);
          break;
        }
        default: {
          const r = faultResponse(fault, route.name, publisherId, this.deps.now());
          if (r) return this.send(res, r, false);
        }
      }
    }

    // Each tenant has its own quota (the service counts a tenant's calls on its own, §5).
    if (tenant?.quota && isApi) {
      const refused = tenant.quota.check(route.name, publisherId, this.deps.now());
      if (refused) {
        stats.throttled += 1;
        tenant.stats.throttled += 1;
        return this.send(res, refused, false);
      }
    }

    const { token, api } = served;
    let response: SimResponse;
    switch (route.name) {
      case 'metadata':
        response =
          route.kind === 'instance'
            ? instanceDiscovery(token)
            : route.kind === 'jwks'
              ? jwksResponse(token, route.tenant)
              : openIdConfiguration(token, route.tenant, route.kind === 'openid-v2');
        break;
      case 'token':
        // A client assertion's aud must be the exact endpoint URL called, query string excluded.
        response = tokenRequest(token, route.tenant, route.version, body, `${token.loginUrl}${route.path}`);
        break;
      default:
        response = handleApi(api, { route, query, authorization: req.headers.authorization, body, forceTokenExpired });
    }
    this.send(res, mangle ? mangleBody(mangle, response) : response, truncate);
  }

  /** The enabled subscriptions of `tenant` this request reads (what a 'subscription-disabled' fault stops). */
  private subscriptionsRead(tenant: TenantState, route: Route, query: Map<string, string>): ContentType[] {
    if (route.name !== 'list' && route.name !== 'content' && route.name !== 'blob') return [];
    return enabledSubscriptionsOf(tenant.api, route, query);
  }

  private send(res: ServerResponse, r: SimResponse, truncate: boolean): void {
    if (res.destroyed) return;
    // Blob bodies are Buffers rendered once: written as they are, never converted per request.
    const payload = typeof r.body === 'string' ? Buffer.from(r.body, 'utf8') : r.body;
    // The Date header comes from the simulator clock: collectors measure skew from it (§9.3).
    const headers = { ...r.headers, Date: new Date(this.deps.now()).toUTCString(), 'Content-Length': String(payload.length) };
    res.writeHead(r.status, headers);
    if (!truncate) {
      res.end(payload);
      return;
    }
    // Promise the whole body, deliver half, then cut the connection.
    res.write(payload.subarray(0, Math.floor(payload.length / 2)), () => res.destroy());
  }
}

function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) tooBig = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(tooBig ? null : Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(null));
    req.on('aborted', () => resolve(null));
  });
}
