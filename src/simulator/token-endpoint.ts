/**
 * Entra ID's side as MSAL and plain HTTP clients see it (reference §2.2, §2.3): OpenID discovery
 * metadata, instance discovery, JWKS, and the v1 (`/oauth2/token`, `resource=`) and v2
 * (`/oauth2/v2.0/token`, `scope=<resource>/.default`) client-credentials token endpoints.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { CLIENT_ASSERTION_TYPE, checkClientAssertion, type JtiStore, type RegisteredCertificate } from './assertion.ts';
import { issueAccessToken, jwks, type SigningKey } from './access-token.ts';
import { entraError, jsonResponse, type EntraErrorSpec, type SimResponse } from './errors.ts';

export const MANAGE_OFFICE_RESOURCE = 'https://manage.office.com';

export interface TokenContext {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  loginUrl: string;
  apiUrl: string;
  now(): number;
  certificates: readonly RegisteredCertificate[];
  jtis: JtiStore;
  rejectReplay: boolean;
  tokenLifetimeSeconds: number;
  signingKey: SigningKey;
  onTokenIssued(): void;
}

/** Token audiences the API accepts, i.e. resources one may ask a token for. */
export function acceptedResources(ctx: Pick<TokenContext, 'apiUrl'>): string[] {
  return [MANAGE_OFFICE_RESOURCE, ctx.apiUrl];
}

function tenantKnown(ctx: TokenContext, tenant: string): boolean {
  return tenant.toLowerCase() === ctx.tenantId.toLowerCase();
}

function tenantNotFound(ctx: TokenContext, tenant: string): SimResponse {
  return entraError(
    {
      status: 400,
      error: 'invalid_request',
      code: 90002,
      description: `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
    },
    ctx.now(),
  );
}

/** `GET /{tenant}/v2.0/.well-known/openid-configuration` (v2) and `/{tenant}/.well-known/...` (v1). */
export function openIdConfiguration(ctx: TokenContext, tenant: string, v2: boolean): SimResponse {
  if (!tenantKnown(ctx, tenant)) return tenantNotFound(ctx, tenant);
  const base = `${ctx.loginUrl}/${ctx.tenantId}`;
  const o = v2 ? '/oauth2/v2.0' : '/oauth2';
  return jsonResponse(200, {
    token_endpoint: `${base}${o}/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${base}/discovery/${v2 ? 'v2.0/' : ''}keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    // MSAL validates that the issuer's host matches the authority's, so it is the simulator's host.
    issuer: v2 ? `${base}/v2.0` : `${base}/`,
    request_uri_parameter_supported: false,
    userinfo_endpoint: `${ctx.loginUrl}/oidc/userinfo`,
    authorization_endpoint: `${base}${o}/authorize`,
    device_authorization_endpoint: `${base}${o}/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${base}${o}/logout`,
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'tid', 'ver'],
    tenant_region_scope: 'EU',
    cloud_instance_name: 'microsoftonline.com',
    cloud_graph_host_name: 'graph.windows.net',
    msgraph_host: 'graph.microsoft.com',
    rbac_url: 'https://pas.windows.net',
  });
}

/** `GET /common/discovery/instance` — MSAL only asks when the host is not in knownAuthorities. */
export function instanceDiscovery(ctx: TokenContext): SimResponse {
  const host = new URL(ctx.loginUrl).host;
  return jsonResponse(200, {
    tenant_discovery_endpoint: `${ctx.loginUrl}/${ctx.tenantId}/v2.0/.well-known/openid-configuration`,
    'api-version': '1.1',
    metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
  });
}

export function jwksResponse(ctx: TokenContext, tenant: string): SimResponse {
  if (!tenantKnown(ctx, tenant)) return tenantNotFound(ctx, tenant);
  return jsonResponse(200, jwks(ctx.signingKey));
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Requested resource from a v2 scope list; OIDC scopes are ignored as Entra does. */
function resourceFromScope(scope: string): { resource: string } | { error: EntraErrorSpec } {
  const parts = scope.split(/\s+/).filter((s) => s && !['openid', 'profile', 'offline_access', 'email'].includes(s));
  if (parts.length !== 1 || !parts[0]!.endsWith('/.default')) {
    return {
      error: {
        status: 400,
        error: 'invalid_scope',
        code: 1002012,
        description: `The provided value for scope '${scope}' is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      },
    };
  }
  return { resource: parts[0]!.slice(0, -'/.default'.length) };
}

function normaliseResource(r: string): string {
  return r.endsWith('/') ? r.slice(0, -1) : r;
}

/**
 * `POST /{tenant}/oauth2/v2.0/token` and `POST /{tenant}/oauth2/token` (form-encoded body).
 * `endpointUrl` is the URL called, without query: a client assertion's `aud` must equal it.
 */
export function tokenRequest(
  ctx: TokenContext,
  tenant: string,
  version: 'v1' | 'v2',
  body: string,
  endpointUrl: string,
): SimResponse {
  const now = ctx.now();
  const fail = (spec: EntraErrorSpec) => entraError(spec, now);
  const missing = (name: string) =>
    fail({ status: 400, error: 'invalid_request', code: 900144, description: `The request body must contain the following parameter: '${name}'.` });

  if (!tenantKnown(ctx, tenant)) return tenantNotFound(ctx, tenant);
  const form = new URLSearchParams(body);
  const grantType = form.get('grant_type');
  if (!grantType) return missing('grant_type');
  if (grantType !== 'client_credentials') {
    return fail({
      status: 400,
      error: 'unsupported_grant_type',
      code: 70003,
      description: `The app requested an unsupported grant type '${grantType}'. The simulator only implements 'client_credentials'.`,
    });
  }
  const clientId = form.get('client_id');
  if (!clientId) return missing('client_id');

  let resource: string;
  if (version === 'v2') {
    const scope = form.get('scope');
    if (!scope) return missing('scope');
    const r = resourceFromScope(scope);
    if ('error' in r) return fail(r.error);
    resource = r.resource;
  } else {
    const r = form.get('resource');
    if (!r) return missing('resource');
    resource = r;
  }
  resource = normaliseResource(resource);
  if (!acceptedResources(ctx).includes(resource)) {
    return fail({
      status: 400,
      error: 'invalid_resource',
      code: 500011,
      description: `The resource principal named ${resource} was not found in the tenant named ${ctx.tenantId}. Ask for '${MANAGE_OFFICE_RESOURCE}' (or '${ctx.apiUrl}').`,
    });
  }
  if (clientId !== ctx.clientId) {
    return fail({
      status: 400,
      error: 'unauthorized_client',
      code: 700016,
      description: `Application with identifier '${clientId}' was not found in the directory '${ctx.tenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`,
    });
  }

  const secret = form.get('client_secret');
  const assertion = form.get('client_assertion');
  const assertionType = form.get('client_assertion_type');
  if (secret !== null && assertion !== null) {
    return fail({
      status: 400,
      error: 'invalid_request',
      code: 90015,
      description: "Send either 'client_secret' or 'client_assertion', not both.",
    });
  }
  if (secret !== null) {
    if (!timingSafeEqual(sha256(secret), sha256(ctx.clientSecret))) {
      return fail({
        status: 401,
        error: 'invalid_client',
        code: 7000215,
        description: `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${ctx.clientId}'.`,
      });
    }
  } else if (assertion !== null) {
    if (assertionType !== CLIENT_ASSERTION_TYPE) {
      return fail({
        status: 400,
        error: 'invalid_request',
        code: 900144,
        description: `The request body must contain the following parameter: 'client_assertion_type' with value '${CLIENT_ASSERTION_TYPE}'.`,
      });
    }
    const problem = checkClientAssertion({
      assertion,
      clientId,
      audience: endpointUrl,
      nowMs: now,
      certificates: ctx.certificates,
      jtis: ctx.jtis,
      rejectReplay: ctx.rejectReplay,
    });
    if (problem) return fail(problem);
  } else {
    return fail({
      status: 401,
      error: 'invalid_client',
      code: 7000218,
      description: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    });
  }

  const lifetime = ctx.tokenLifetimeSeconds;
  const accessToken = issueAccessToken(ctx.signingKey, {
    tenantId: ctx.tenantId,
    clientId,
    audience: resource,
    nowMs: now,
    lifetimeSeconds: lifetime,
  });
  ctx.onTokenIssued();
  if (version === 'v2') {
    return jsonResponse(200, { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken });
  }
  // v1 answers with string-typed numbers (reference §2.2).
  const nowS = Math.floor(now / 1000);
  return jsonResponse(200, {
    token_type: 'Bearer',
    expires_in: String(lifetime),
    ext_expires_in: String(lifetime),
    expires_on: String(nowS + lifetime),
    not_before: String(nowS),
    resource,
    access_token: accessToken,
  });
}
