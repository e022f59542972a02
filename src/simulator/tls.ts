/**
 * Certificates for the simulator, all generated at start in memory (DESIGN.md: no private keys in
 * the repo). MSAL refuses non-HTTPS authorities, so the simulator serves HTTPS with a server
 * certificate signed by a throw-away CA whose certificate clients are told to trust (caPem).
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

export interface ServerTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

const HOUR = 3_600_000;

/**
 * CA + server certificate with SANs DNS localhost, IP 127.0.0.1, IP ::1 and the bind host.
 * `expired`: a server certificate that expired yesterday (for tests of the error a client reports).
 */
export async function generateServerTls(host: string, opts: { expired?: boolean } = {}): Promise<ServerTls> {
  // Backdate validity an hour: a client clock slightly behind must not see "not yet valid".
  const notBeforeDate = new Date(Date.now() - (opts.expired ? 48 * HOUR : HOUR));
  const notAfterDate = new Date(Date.now() + (opts.expired ? -24 * HOUR : 30 * 24 * HOUR));
  // A name of its own per simulator: a client trusting several simulators' CAs at once (one
  // api.ca_file for many tenants, test/bench scenario 5) picks the issuer by name, and these
  // certificates carry no key identifiers (selfsigned 5 writes none) to tell equal names apart:
  // with one shared name, OpenSSL tried the first CA and failed (CERT_SIGNATURE_FAILURE).
  const { generate } = await loadSelfsigned();
  const ca = await generate([{ name: 'commonName', value: `m365-forward simulator CA (ephemeral ${randomBytes(6).toString('hex')})` }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const altNames: { type: 2 | 7; value?: string; ip?: string }[] = [
    { type: 2, value: 'localhost' },
    { type: 7, ip: '127.0.0.1' },
    { type: 7, ip: '::1' },
  ];
  if (host && !['localhost', '127.0.0.1', '::1', '0.0.0.0', '::'].includes(host)) {
    altNames.push(isIP(host) ? { type: 7, ip: host } : { type: 2, value: host });
  }
  const server = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    ],
  });
  return { caPem: ca.cert, certPem: server.cert, keyPem: server.private };
}

export interface CertThumbprints {
  /** upper-case hex SHA-1 of the DER certificate (what Entra shows as "Thumbprint") */
  sha1Hex: string;
  /** lower-case hex SHA-256 of the DER certificate */
  sha256Hex: string;
  /** base64url forms, as carried in JWT headers `x5t` and `x5t#S256` */
  x5t: string;
  x5tS256: string;
}

export function thumbprints(certPem: string): CertThumbprints {
  const der = new X509Certificate(certPem).raw;
  const sha1 = createHash('sha1').update(der).digest();
  const sha256 = createHash('sha256').update(der).digest();
  return {
    sha1Hex: sha1.toString('hex').toUpperCase(),
    sha256Hex: sha256.toString('hex'),
    x5t: sha1.toString('base64url'),
    x5tS256: sha256.toString('base64url'),
  };
}

/** RSA-2048 self-signed client certificate, for tests and for users trying certificate auth. */
export async function generateClientCertificate(opts: { commonName?: string } = {}): Promise<{
  certPem: string;
  keyPem: string;
  thumbprintSha1: string;
  thumbprintSha256: string;
}> {
  const notBeforeDate = new Date(Date.now() - HOUR);
  const { generate } = await loadSelfsigned();
  const pems = await generate([{ name: 'commonName', value: opts.commonName ?? 'm365-forward client' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 365 * 24 * HOUR),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  });
  const t = thumbprints(pems.cert);
  return { certPem: pems.cert, keyPem: pems.private, thumbprintSha1: t.sha1Hex, thumbprintSha256: t.sha256Hex };
}

/**
 * selfsigned (and the X.509/ASN.1 libraries under it) is loaded when a certificate is made, not
 * when the CLI starts: it costs ~17 MB and 0.15 s, and `run` never needs it.
 */
function loadSelfsigned(): Promise<typeof import('selfsigned')> {
  return import('selfsigned');
}
