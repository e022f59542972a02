import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import type https from 'node:https';
import { ConfidentialClientApplication, LogLevel, type Configuration } from '@azure/msal-node';
import type { TenantConfig } from '../config/schema.ts';
import { CollectorError } from '../errors.ts';
import { createMsalNetworkClient } from './network-client.ts';

/** Gives a bearer token for the tenant's Management API; refreshed by MSAL before expiry. */
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

/**
 * MSAL confidential client for one tenant: client secret, or certificate (MSAL signs the client
 * assertion; it gets the SHA-256 thumbprint, so the header carries x5t#S256 and the signature is
 * PS256, which Entra ID recommends). The scope is the API host + `/.default` (reference §2.2).
 */
export function createTokenProvider(tenant: TenantConfig, agent: https.Agent, timeoutMs: number): TokenProvider {
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
    const { privateKey, thumbprintSha256 } = certificateCredential(c.certificatePem, c.privateKey.reveal(), c.certificateFile, c.privateKeyFile);
    auth.clientCertificate = { thumbprintSha256, privateKey };
  }
  const app = new ConfidentialClientApplication({
    auth,
    system: {
      networkClient: createMsalNetworkClient(agent, timeoutMs),
      // MSAL's own logs can include PII; keep them off and report failures ourselves.
      loggerOptions: { logLevel: LogLevel.Error, piiLoggingEnabled: false, loggerCallback: () => {} },
    },
  });
  const scope = `${tenant.apiUrl}/.default`;
  return {
    async getToken(opts) {
      try {
        const res = await app.acquireTokenByClientCredential({ scopes: [scope], skipCache: opts?.forceRefresh ?? false });
        if (!res?.accessToken) throw new Error('Entra ID returned no access token');
        return res.accessToken;
      } catch (err) {
        throw tokenError(err, tenant);
      }
    },
  };
}

/** Checks the PEM pair, makes the key PKCS#8 (what MSAL wants) and computes the thumbprint. */
export function certificateCredential(certPem: string, keyPem: string, certFile: string, keyFile: string) {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new CollectorError('CONFIG_INVALID', `certificate_file ${certFile} is not a readable X.509 certificate: ${(err as Error).message}`, { fatal: true });
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new CollectorError('CONFIG_INVALID', `private_key_file ${keyFile} is not a readable private key: ${(err as Error).message}`, { fatal: true });
  }
  if (!cert.checkPrivateKey(key)) {
    throw new CollectorError('CONFIG_INVALID', `private_key_file ${keyFile} does not belong to certificate_file ${certFile}`, { fatal: true });
  }
  const thumbprintSha256 = createHash('sha256').update(cert.raw).digest('hex');
  const privateKey = key.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { privateKey, thumbprintSha256, notAfter: cert.validTo };
}

/** Turns MSAL errors into one clear line: which tenant, what Entra ID said (AADSTS code), fatal or not. */
function tokenError(err: unknown, tenant: TenantConfig): CollectorError {
  const e = err as { errorCode?: string; errorMessage?: string; message?: string; subError?: string };
  const msg = (e.errorMessage || e.message || String(err)).split(/\r?\n/)[0]!;
  const aadsts = /AADSTS\d+/.exec(msg)?.[0];
  // These mean the credentials or the app registration are wrong: retrying will not help.
  // Everything else (temporarily_unavailable, server_error, network errors) is retried, even
  // when it carries an AADSTS code (e.g. AADSTS90033, a transient service error).
  const fatal = ['invalid_client', 'unauthorized_client', 'invalid_request', 'invalid_scope', 'invalid_grant', 'invalid_resource'].includes(e.errorCode ?? '');
  return new CollectorError(
    'AUTH_FAILED',
    `cannot get a token for tenant ${tenant.name} (client ${tenant.clientId}) from ${tenant.loginUrl}: ${e.errorCode ? e.errorCode + ': ' : ''}${msg}`,
    { fatal, apiCode: aadsts, cause: err },
  );
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
