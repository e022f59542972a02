import net from 'node:net';
import { typeName } from '../config/validate.ts';

/** Where the metrics server listens: a host (name or IP, IPv6 without brackets) and a TCP port. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** A DNS name (`localhost`, `metrics.internal`). */
const DNS_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$/;

const EXPECTED = 'must be HOST:PORT, like 127.0.0.1:9464 (0.0.0.0:9464 for every IPv4 interface, [::1]:9464 for IPv6)';

/**
 * Parses `metrics.listen` (`HOST:PORT`, `[IPv6]:PORT`). The host is required: listening on every
 * interface is a choice to write out (`0.0.0.0`), never a default. Pure. A problem names what is
 * wrong without echoing a value that could be a secret pasted into the wrong key (typeName).
 */
export function parseListen(v: unknown): ListenAddress | { problem: string } {
  if (typeof v !== 'string') return { problem: `${EXPECTED}, got ${typeName(v)}` };
  const s = v.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return { problem: `${EXPECTED}, without a scheme or path (the server answers /metrics and /healthz), got ${typeName(v)}` };
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
  if (!m) return { problem: `${EXPECTED}, got ${typeName(v)}` };
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (host === '') return { problem: `${EXPECTED}: the host is missing (write 0.0.0.0 to listen on every interface), got ${typeName(v)}` };
  if (m[1] !== undefined ? net.isIPv6(host) === false : !(net.isIPv4(host) || DNS_NAME.test(host))) {
    return { problem: `${EXPECTED}: the host is not a host name or an IP address, got ${typeName(v)}` };
  }
  if (port < 1 || port > 65535) return { problem: `${EXPECTED}: the port must be from 1 to 65535, got ${typeName(v)}` };
  return { host, port };
}

/** `host:port`, with brackets around an IPv6 address: for messages and logs. */
export function formatListen(a: ListenAddress): string {
  return net.isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
