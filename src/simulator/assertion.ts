/**
 * Client assertion (certificate credential) verification, as Entra does it
 * (reference/management-api.md §2.3): a JWS signed with the private key of a certificate registered
 * on the application, found by its `x5t#S256` or `x5t` header; `aud` = the exact token endpoint
 * URL that was called; `iss` = `sub` = client id; `exp`/`nbf` checked with 5 minutes of skew;
 * `jti` unique. Pure: no I/O; the caller passes the clock and the replay store.
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { EntraErrorSpec } from './errors.ts';
import { decodeJwt, verifyJwtSignature, type JwtAlg } from './jwt.ts';
import { thumbprints } from './tls.ts';

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const SKEW_MS = 5 * 60_000;
/** An assertion valid for longer than this is refused: it catches exp written in ms, not seconds. */
const MAX_LIFETIME_MS = 24 * 3_600_000;

export interface RegisteredCertificate {
  publicKey: KeyObject;
  x5t: string;
  x5tS256: string;
  sha1Hex: string;
}

export function registerCertificatePem(pem: string): RegisteredCertificate {
  const cert = new X509Certificate(pem);
  const t = thumbprints(pem);
  const publicKey = createPublicKey(cert.publicKey.export({ format: 'pem', type: 'spki' }));
  if (publicKey.asymmetricKeyType !== 'rsa' && publicKey.asymmetricKeyType !== 'rsa-pss') {
    throw new Error(`registerCertificate: only RSA certificates are supported (got ${publicKey.asymmetricKeyType})`);
  }
  return { publicKey, x5t: t.x5t, x5tS256: t.x5tS256, sha1Hex: t.sha1Hex };
}

/**
 * Remembers used `jti` values until their assertion could no longer be valid anyway.
 *
 * Re-presenting the *identical* signed assertion while it is valid is accepted: msal-node caches
 * its certificate assertion and sends it again for up to 10 minutes (forced refreshes included),
 * and Entra ID accepts that, or Microsoft's own library would fail. A *different* assertion that
 * reuses a jti is a forgery or a broken client, and is refused.
 */
export class JtiStore {
  private readonly seen = new Map<string, { expMs: number; assertion: string }>();

  /** True when this jti was used before by a different assertion. */
  conflicts(jti: string, assertion: string): boolean {
    const prev = this.seen.get(jti);
    return prev !== undefined && prev.assertion !== assertion;
  }

  add(jti: string, assertion: string, expMs: number, nowMs: number): void {
    this.seen.set(jti, { expMs, assertion });
    if (this.seen.size > 1000) {
      for (const [k, v] of this.seen) if (v.expMs + SKEW_MS < nowMs) this.seen.delete(k);
    }
  }
}

export interface AssertionCheck {
  assertion: string;
  clientId: string;
  /** The token endpoint URL the request was sent to (scheme, host, port, path; no query). */
  audience: string;
  nowMs: number;
  certificates: readonly RegisteredCertificate[];
  jtis: JtiStore;
  rejectReplay: boolean;
}

const invalidClient = (code: number, description: string): EntraErrorSpec => ({
  status: 401,
  error: 'invalid_client',
  code,
  description,
});

/** Returns null when the assertion is acceptable (and records its jti), else the Entra error. */
export function checkClientAssertion(c: AssertionCheck): EntraErrorSpec | null {
  const jwt = decodeJwt(c.assertion);
  if (typeof jwt === 'string') return invalidClient(50027, `JWT token is invalid or malformed (${jwt}).`);
  const alg = jwt.header['alg'];
  if (alg !== 'RS256' && alg !== 'PS256') {
    return invalidClient(50027, `JWT token is invalid or malformed: alg '${String(alg)}' is not supported; use RS256 or PS256.`);
  }
  const x5tS256 = jwt.header['x5t#S256'];
  const x5t = jwt.header['x5t'];
  if (typeof x5tS256 !== 'string' && typeof x5t !== 'string') {
    return invalidClient(700027, "Client assertion failed signature validation. [Reason - The header has neither 'x5t#S256' nor 'x5t'.]");
  }
  const cert = c.certificates.find((r) =>
    typeof x5tS256 === 'string' ? r.x5tS256 === x5tS256 : r.x5t === x5t,
  );
  if (!cert) {
    const shown = typeof x5tS256 === 'string' ? `x5t#S256 '${x5tS256}'` : `x5t '${String(x5t)}'`;
    return invalidClient(
      700027,
      `Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: ${shown}]. The certificate is not registered on application '${c.clientId}'.`,
    );
  }
  if (!verifyJwtSignature(jwt, alg as JwtAlg, cert.publicKey)) {
    return invalidClient(7000274, `Client assertion contains an invalid signature (${alg}, certificate ${cert.sha1Hex}).`);
  }
  const p = jwt.payload;
  if (p['iss'] !== c.clientId || p['sub'] !== c.clientId) {
    return invalidClient(
      700021,
      `Client assertion application identifier doesn't match 'client_id' parameter: iss='${String(p['iss'])}', sub='${String(p['sub'])}', client_id='${c.clientId}'.`,
    );
  }
  const aud = p['aud'];
  const audOk = aud === c.audience || (Array.isArray(aud) && aud.length === 1 && aud[0] === c.audience);
  if (!audOk) {
    return invalidClient(
      700212,
      `Client assertion audience claim does not match the token endpoint: aud='${JSON.stringify(aud)}', expected '${c.audience}'.`,
    );
  }
  const exp = p['exp'];
  const nbf = p['nbf'];
  if (typeof exp !== 'number' || typeof nbf !== 'number') {
    return invalidClient(700024, "Client assertion is not within its valid time range: 'exp' and 'nbf' must be NumericDate seconds.");
  }
  const expMs = exp * 1000;
  const nbfMs = nbf * 1000;
  const now = new Date(c.nowMs).toISOString();
  if (expMs <= c.nowMs - SKEW_MS) {
    return invalidClient(700024, `Client assertion is not within its valid time range: expired at ${new Date(expMs).toISOString()}, current time ${now}.`);
  }
  if (nbfMs > c.nowMs + SKEW_MS) {
    return invalidClient(700024, `Client assertion is not within its valid time range: nbf ${new Date(nbfMs).toISOString()} is in the future, current time ${now}.`);
  }
  if (expMs - c.nowMs > MAX_LIFETIME_MS) {
    return invalidClient(700024, `Client assertion is not within its valid time range: exp ${exp} is more than 24 h ahead (NumericDate is seconds, not milliseconds).`);
  }
  const jti = p['jti'];
  if (typeof jti !== 'string' || jti === '') {
    return invalidClient(50027, "JWT token is invalid or malformed: claim 'jti' is required.");
  }
  if (c.rejectReplay && c.jtis.conflicts(jti, c.assertion)) {
    return invalidClient(700025, `Client assertion has already been used: jti '${jti}' was presented before by a different assertion.`);
  }
  c.jtis.add(jti, c.assertion, expMs, c.nowMs);
  return null;
}
