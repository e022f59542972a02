import { createHash, createPrivateKey, randomUUID, sign, constants, X509Certificate, type KeyObject } from 'node:crypto';
import type https from 'node:https';
import { ConfidentialClientApplication, LogLevel, type Configuration } from '@azure/msal-node';
import type { TenantConfig } from '../config/schema.ts';
import { CollectorError } from '../errors.ts';
import type { ApiClock } from '../support/api-clock.ts';
import { createMsalNetworkClient } from './network-client.ts';

/** Gives a bearer token for the tenant's Management API. */
export interface TokenProvider {
  /** `forceRefresh` after the API said 401: the cached token was revoked or expired early. */
  getToken(opts?: { forceRefresh?: boolean }): Promise<string>;
}

/** Well-known Entra ID hosts MSAL discovers by itself; anything else is declared as a known authority. */
const MICROSOFT_LOGIN_HOSTS = new Set([
  'login.microsoftonline.com',
  'login.windows.net',
  'login.microsoftonline.us',
  'login.partner.microsoftonline.cn',
  'login.chinacloudapi.cn',
]);

/** A token is used until this long before it expires (collectors refresh 1–5 min early, reference §2.2). */
const REFRESH_BEFORE_EXPIRY_MS = 5 * 60_000;

export interface TokenProviderDeps {
  agent: https.Agent;
  timeoutMs: number;
  /** The tenant's API clock: client assertions are dated in the API's time (Entra ID allows 5 min of skew). */
  clock: ApiClock;
}

/**
 * MSAL confidential client for one tenant: client secret, or certificate. The scope is the API
 * host + `/.default` (reference §2.2).
 *
 * For a certificate, the client assertion is signed here rather than by MSAL: MSAL dates it with
 * the local clock, and a local clock 5 minutes fast makes Entra ID refuse it as if the credentials
 * were wrong. The assertion is PS256 with `x5t#S256` (what Entra ID recommends), `aud` the token
 * endpoint MSAL calls, `nbf`/`iat` now and `exp` 10 minutes later, all in the API's time.
 *
 * Tokens are cached here for their lifetime measured on the monotonic clock (minus 5 minutes), so
 * a skewed local clock neither expires them at once nor keeps dead ones; MSAL's own call costs
 * ~75 µs, too much on every API request.
 */
export function createTokenProvider(tenant: TenantConfig, deps: TokenProviderDeps): TokenProvider {
  const login = new URL(tenant.loginUrl);
  const auth: Configuration['auth'] = {
    clientId: tenant.clientId,
    authority: `${tenant.loginUrl}/${tenant.tenantId}`,
  };
  if (!MICROSOFT_LOGIN_HOSTS.has(login.hostname)) auth.knownAuthorities = [login.host];
  if (tenant.credential.kind === 'secret') {
    auth.clientSecret = tenant.credential.secret.reveal();
  } else {
    const c = tenant.credential;
    const cred = certificateCredential(c.certificatePem, c.privateKey.reveal(), c.certificateFile, c.privateKeyFile);
    auth.clientAssertion = async (cfg) =>
      signClientAssertion({
        key: cred.key,
        x5tS256: cred.x5tS256,
        clientId: tenant.clientId,
        audience: cfg.tokenEndpoint ?? `${tenant.loginUrl}/${tenant.tenantId}/oauth2/v2.0/token`,
        nowMs: deps.clock.now(),
      });
  }
  const network = createMsalNetworkClient(deps.agent, deps.timeoutMs, deps.clock);
  const app = new ConfidentialClientApplication({
    auth,
    system: {
      networkClient: network,
      // MSAL's own logs can include PII; keep them off and report failures ourselves.
      loggerOptions: { logLevel: LogLevel.Error, piiLoggingEnabled: false, loggerCallback: () => {} },
    },
  });
  const scope = `${tenant.apiUrl}/.default`;
  let cached: { token: string; refreshAt: number } | undefined;
  let pending: Promise<string> | undefined;
  const fetchToken = async (forceRefresh: boolean): Promise<string> => {
    try {
      const res = await app.acquireTokenByClientCredential({ scopes: [scope], skipCache: forceRefresh });
      if (!res?.accessToken) throw new Error('Entra ID returned no access token');
      // Lifetime as MSAL computed it (expiresOn = local now + expires_in): a duration, skew-free.
      const lifetime = res.expiresOn ? res.expiresOn.getTime() - Date.now() : 3600_000;
      cached = { token: res.accessToken, refreshAt: performance.now() + Math.max(0, lifetime - REFRESH_BEFORE_EXPIRY_MS) };
      return res.accessToken;
    } catch (err) {
      throw tokenError(err, tenant, network.lastProblem());
    }
  };
  return {
    getToken(opts) {
      const force = opts?.forceRefresh ?? false;
      if (!force && cached && performance.now() < cached.refreshAt) return Promise.resolve(cached.token);
      if (force) cached = undefined;
      // One request at a time: feeds asking together share it.
      pending ??= fetchToken(force).finally(() => (pending = undefined));
      return pending;
    },
  };
}

/**
 * Checks the PEM pair and computes what a client assertion needs. Entra ID takes RSA certificates
 * for client credentials (RS256/PS256), so another key type is refused here, at start.
 */
export function certificateCredential(certPem: string, keyPem: string, certFile: string, keyFile: string) {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new CollectorError('CONFIG_INVALID', `certificate_file ${certFile} is not a readable X.509 certificate (PEM)`, { fatal: true });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new CollectorError('CONFIG_INVALID', `private_key_file ${keyFile} is not a readable, unencrypted PEM private key`, { fatal: true });
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new CollectorError('CONFIG_INVALID', `private_key_file ${keyFile} is a ${key.asymmetricKeyType} key; Entra ID client certificates must be RSA (2048 bits or more)`, { fatal: true });
  }
  if (!cert.checkPrivateKey(key)) {
    throw new CollectorError('CONFIG_INVALID', `private_key_file ${keyFile} does not belong to certificate_file ${certFile}`, { fatal: true });
  }
  const x5tS256 = createHash('sha256').update(cert.raw).digest('base64url');
  return { key, x5tS256, notAfter: cert.validTo };
}

/** A signed client assertion (reference §2.3): PS256, x5t#S256, aud = token endpoint, 10 min validity. */
export function signClientAssertion(a: { key: KeyObject; x5tS256: string; clientId: string; audience: string; nowMs: number }): string {
  const now = Math.floor(a.nowMs / 1000);
  const header = { alg: 'PS256', typ: 'JWT', 'x5t#S256': a.x5tS256 };
  const payload = { aud: a.audience, iss: a.clientId, sub: a.clientId, jti: randomUUID(), nbf: now, iat: now, exp: now + 600 };
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = sign('sha256', Buffer.from(input), { key: a.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  return `${input}.${sig.toString('base64url')}`;
}

function b64(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

/**
 * Turns MSAL errors into one clear line: which tenant, what Entra ID said (AADSTS code) or what
 * failed on the way there, and whether retrying can help.
 */
function tokenError(err: unknown, tenant: TenantConfig, network: { message: string; permanent: boolean } | undefined): CollectorError {
  const e = err as { errorCode?: string; errorMessage?: string; message?: string };
  const who = `cannot get a token for tenant ${tenant.name} (client ${tenant.clientId}) from ${tenant.loginUrl}`;
  if (network) {
    // A connection problem, not a refusal: MSAL only says endpoints_resolution_error / network_error.
    return new CollectorError('API_UNAVAILABLE', `${who}: ${network.message}`, { fatal: network.permanent, cause: err });
  }
  const msg = (e.errorMessage || e.message || String(err)).split(/\r?\n/)[0]!;
  const aadsts = /AADSTS\d+/.exec(msg)?.[0];
  // These mean the credentials or the app registration are wrong: retrying will not help.
  // Everything else (temporarily_unavailable, server_error) is retried, even when it carries an
  // AADSTS code (e.g. AADSTS90033, a transient service error).
  const fatal = ['invalid_client', 'unauthorized_client', 'invalid_request', 'invalid_scope', 'invalid_grant', 'invalid_resource'].includes(e.errorCode ?? '');
  return new CollectorError('AUTH_FAILED', `${who}: ${e.errorCode ? e.errorCode + ': ' : ''}${msg}`, { fatal, apiCode: aadsts, cause: err });
}

/** Reads the `roles` claim of an access token for display (never verifies, never prints the token). */
export function tokenRoles(accessToken: string): string[] {
  try {
    const payload = JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return Array.isArray(payload.roles) ? payload.roles.map(String) : [];
  } catch {
    return [];
  }
}
