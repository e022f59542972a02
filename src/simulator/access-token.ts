/**
 * Access tokens the simulator issues and later checks on every API call. They are real JWTs
 * (RS256, the simulator's own key), shaped like Entra's v1 app-only tokens for the Office 365
 * Management APIs (reference §2.1: `roles` carries ActivityFeed.Read; §1: `aud` is the API host).
 */
import { generateKeyPair, randomUUID, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { decodeJwt, signJwt, verifyJwtSignature } from './jwt.ts';

export const ROLES = ['ActivityFeed.Read', 'ActivityFeed.ReadDlp'];

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  kid: string;
}

export async function generateSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  return { privateKey, publicKey, kid: randomUUID().replace(/-/g, '').slice(0, 27) };
}

export function jwks(key: SigningKey): unknown {
  const jwk = key.publicKey.export({ format: 'jwk' });
  return { keys: [{ kty: 'RSA', use: 'sig', kid: key.kid, n: jwk.n, e: jwk.e, alg: 'RS256' }] };
}

export interface IssueParams {
  tenantId: string;
  clientId: string;
  audience: string;
  nowMs: number;
  lifetimeSeconds: number;
}

export function issueAccessToken(key: SigningKey, p: IssueParams): string {
  const iat = Math.floor(p.nowMs / 1000);
  return signJwt(
    { typ: 'JWT', alg: 'RS256', kid: key.kid },
    {
      aud: p.audience,
      iss: `https://sts.windows.net/${p.tenantId}/`,
      iat,
      nbf: iat,
      exp: iat + p.lifetimeSeconds,
      aio: randomUUID(),
      app_displayname: 'm365-forward (simulated)',
      appid: p.clientId,
      appidacr: '1',
      idp: `https://sts.windows.net/${p.tenantId}/`,
      idtyp: 'app',
      oid: randomUUID(),
      roles: ROLES,
      sub: p.clientId,
      tid: p.tenantId,
      uti: randomUUID().replace(/-/g, '').slice(0, 22),
      ver: '1.0',
    },
    key.privateKey,
  );
}

/**
 * Tokens whose signature this key already verified, with their payload. An RSA verification costs
 * about as much as serving a small blob, and a collector presents the same token on every call;
 * the claims (exp, nbf, aud) are still checked against the clock on every request.
 */
const verified = new WeakMap<SigningKey, Map<string, Record<string, unknown>>>();
const VERIFIED_MAX = 256;

/** The payload of a token signed by `key`, or why it is not one. */
function signedPayload(key: SigningKey, token: string): { payload: Record<string, unknown> } | { problem: TokenProblem; detail: string } {
  let cache = verified.get(key);
  const hit = cache?.get(token);
  if (hit) return { payload: hit };
  const jwt = decodeJwt(token);
  if (typeof jwt === 'string') return { problem: 'malformed', detail: jwt };
  if (jwt.header['alg'] !== 'RS256' || jwt.header['kid'] !== key.kid || !verifyJwtSignature(jwt, 'RS256', key.publicKey)) {
    return { problem: 'signature', detail: 'token signature is invalid (not issued by this simulator run)' };
  }
  if (!cache) verified.set(key, (cache = new Map()));
  if (cache.size >= VERIFIED_MAX) cache.clear();
  cache.set(token, jwt.payload);
  return { payload: jwt.payload };
}

export type TokenProblem = 'missing' | 'malformed' | 'signature' | 'audience' | 'expired' | 'not-yet-valid';

export interface VerifiedToken {
  tid: string;
  roles: string[];
}

/**
 * Check a bearer token against the simulator clock. No skew on `exp`: the simulator must not be more
 * forgiving than the API, and a collector that refreshes only on the exact second is fragile.
 */
export function verifyAccessToken(
  key: SigningKey,
  authorization: string | undefined,
  audiences: readonly string[],
  nowMs: number,
): VerifiedToken | { problem: TokenProblem; detail: string } {
  if (!authorization) return { problem: 'missing', detail: 'no Authorization header' };
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!m) return { problem: 'missing', detail: 'Authorization header is not "Bearer <token>"' };
  const signed = signedPayload(key, m[1]!);
  if ('problem' in signed) return signed;
  const p = signed.payload;
  if (typeof p['aud'] !== 'string' || !audiences.includes(p['aud'])) {
    return { problem: 'audience', detail: `token audience '${String(p['aud'])}' is not the Management API` };
  }
  const exp = typeof p['exp'] === 'number' ? p['exp'] * 1000 : 0;
  if (nowMs >= exp) return { problem: 'expired', detail: `token expired at ${new Date(exp).toISOString()}` };
  const nbf = typeof p['nbf'] === 'number' ? p['nbf'] * 1000 : 0;
  if (nbf > nowMs + 5 * 60_000) return { problem: 'not-yet-valid', detail: 'token nbf is in the future' };
  const roles = Array.isArray(p['roles']) ? p['roles'].filter((r): r is string => typeof r === 'string') : [];
  return { tid: String(p['tid']), roles };
}
