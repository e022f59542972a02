/** Minimal JWS compact helpers on node:crypto (RS256 and PS256 only, which is all Entra accepts here). */
import { constants, sign, verify, type KeyObject } from 'node:crypto';

export type JwtAlg = 'RS256' | 'PS256';

export function b64url(input: Buffer | string): string {
  return Buffer.from(input).toString('base64url');
}

export interface DecodedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

/** Split and JSON-decode a compact JWS. Returns a reason string when it is not one. */
export function decodeJwt(token: string): DecodedJwt | string {
  const parts = token.split('.');
  if (parts.length !== 3) return `expected 3 dot-separated parts, got ${parts.length}`;
  const [h, p, s] = parts as [string, string, string];
  const b64 = /^[A-Za-z0-9_-]*$/;
  if (!b64.test(h) || !b64.test(p) || !b64.test(s)) return 'parts are not base64url';
  let header: unknown;
  let payload: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    return 'header or payload is not JSON';
  }
  if (!isObject(header) || !isObject(payload)) return 'header or payload is not a JSON object';
  return { header, payload, signingInput: `${h}.${p}`, signature: Buffer.from(s, 'base64url') };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function keyOptions(alg: JwtAlg, key: KeyObject) {
  return alg === 'PS256'
    ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
    : { key, padding: constants.RSA_PKCS1_PADDING };
}

export function signJwt(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject): string {
  const alg = header['alg'];
  if (alg !== 'RS256' && alg !== 'PS256') throw new Error(`signJwt: unsupported alg ${String(alg)}`);
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = sign('sha256', Buffer.from(input), keyOptions(alg, key));
  return `${input}.${b64url(sig)}`;
}

export function verifyJwtSignature(jwt: DecodedJwt, alg: JwtAlg, publicKey: KeyObject): boolean {
  try {
    return verify('sha256', Buffer.from(jwt.signingInput), keyOptions(alg, publicKey), jwt.signature);
  } catch {
    return false;
  }
}
