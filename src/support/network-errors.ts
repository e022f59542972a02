/**
 * One clear sentence for a failed connection towards Microsoft (Entra ID or the API), shared by
 * MSAL's network client and the API client, so the operator reads what failed (refused, not
 * trusted, expired) instead of MSAL's generic `endpoints_resolution_error`.
 */
const TLS_UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

export interface NetworkProblem {
  /** One line for logs and errors; never holds a secret (only host, port and error codes). */
  message: string;
  /** Retrying cannot help without a change by the operator (TLS trust, expired certificate, bad host name). */
  permanent: boolean;
}

/** Finds the errno / OpenSSL code of an error from node-fetch, https or an AbortSignal. */
function errorCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown; erroredSysCall?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string' && e.code !== 'ERR_NON_2XX_3XX_RESPONSE' && e.code !== 'FETCH_ERROR') return e.code;
  }
  return undefined;
}

export function describeNetworkError(err: unknown, url: string): NetworkProblem {
  let where = url;
  try {
    where = new URL(url).host;
  } catch {
    // keep the text
  }
  const code = errorCode(err) ?? '';
  const text = err instanceof Error ? err.message : String(err);
  // A failure through the proxy (src/support/proxy.ts ProxyError): its message names the proxy and
  // what to change; node-fetch (MSAL's client) puts "request to URL failed, reason: " before it.
  if (code === 'ERR_PROXY') {
    return { message: `request to ${where} failed: ${text.replace(/^request to \S+ failed, reason: /, '').split('\n')[0]!.slice(0, 400)}`, permanent: false };
  }
  if (code === 'ECONNREFUSED') return { message: `connection to ${where} refused (ECONNREFUSED): nothing listens there, or a firewall rejects it`, permanent: false };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { message: `cannot resolve ${where} (${code}): check DNS and the host name`, permanent: false };
  if (code === 'ECONNRESET' || code === 'EPIPE') return { message: `connection to ${where} reset (${code})`, permanent: false };
  if (code === 'ETIMEDOUT' || code === 'ECONNABORTED' || code === 'ENETUNREACH' || code === 'EHOSTUNREACH') return { message: `cannot reach ${where} (${code})`, permanent: false };
  if (TLS_UNTRUSTED.has(code)) {
    return { message: `the TLS certificate of ${where} is not trusted (${code}): if a TLS-inspecting proxy or a private CA signs it, set api.ca_file to that CA (PEM)`, permanent: true };
  }
  if (code === 'CERT_HAS_EXPIRED') return { message: `the TLS certificate of ${where} has expired (CERT_HAS_EXPIRED), or the local clock is far off`, permanent: true };
  if (code === 'CERT_NOT_YET_VALID') return { message: `the TLS certificate of ${where} is not yet valid (CERT_NOT_YET_VALID): check the local clock`, permanent: true };
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return { message: `the TLS certificate of ${where} does not name that host (ERR_TLS_CERT_ALTNAME_INVALID)`, permanent: true };
  if (code.startsWith('ERR_SSL') || code.startsWith('EPROTO')) return { message: `TLS handshake with ${where} failed (${code})`, permanent: false };
  if (/abort|timed? ?out|no response within/i.test(text)) return { message: `no response from ${where} in time (${text.split('\n')[0]!.slice(0, 120)})`, permanent: false };
  return { message: `request to ${where} failed: ${code ? code + ': ' : ''}${text.split('\n')[0]!.slice(0, 200)}`, permanent: false };
}
