import https from 'node:https';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

/**
 * One keep-alive HTTPS agent for everything on the Microsoft side (MSAL and the API), so the
 * custom CA (`api.ca_file`: a TLS-inspecting proxy's CA, or the simulator's) applies to both.
 * The extra CA is added to Node's bundled roots, not put in their place.
 */
export function createHttpsAgent(caFile?: string, caPem?: string): https.Agent {
  const extra = caPem ?? (caFile ? readFileSync(caFile, 'utf8') : undefined);
  return new https.Agent({
    keepAlive: true,
    maxSockets: 16,
    // A secure context built once, not a `ca` option: the agent keys its socket pool by
    // concatenating every `ca` string for each request, which with Node's ~150 roots cost a third
    // of the collector's CPU.
    secureContext: extra ? tls.createSecureContext({ ca: [...tls.rootCertificates, extra] }) : undefined,
  });
}
