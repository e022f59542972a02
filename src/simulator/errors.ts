/**
 * Response values and the two error formats the simulator speaks:
 * - Management API: `{"error":{"code":"AFxxxxx","message":"..."}}` (reference §5).
 * - Entra token endpoint: `{"error":"invalid_client","error_description":"AADSTS…","error_codes":[…],…}`
 *   (reference §2.2).
 * Handlers return a SimResponse; the server writes it (or a fault mangles it) in one place.
 */
import { randomUUID } from 'node:crypto';

export interface SimResponse {
  status: number;
  headers: Record<string, string>;
  /** Blob bodies are pre-rendered Buffers, sent as they are; everything else is small text. */
  body: string | Buffer;
}

export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

export function jsonResponse(status: number, value: unknown, headers: Record<string, string> = {}): SimResponse {
  return { status, headers: { 'Content-Type': JSON_CONTENT_TYPE, ...headers }, body: JSON.stringify(value) };
}

/** AF codes the simulator emits, with the service's own wording where the docs give it. */
export const AF = {
  AF10001: 'AF10001',
  AF20001: 'AF20001',
  AF20002: 'AF20002',
  AF20010: 'AF20010',
  AF20020: 'AF20020',
  AF20021: 'AF20021',
  AF20022: 'AF20022',
  AF20023: 'AF20023',
  AF20024: 'AF20024',
  AF20031: 'AF20031',
  AF20050: 'AF20050',
  AF20051: 'AF20051',
  AF20052: 'AF20052',
  AF20055: 'AF20055',
  AF429: 'AF429',
  AF50000: 'AF50000',
  AF50005: 'AF50005',
} as const;
export type AfCode = keyof typeof AF;

export function afError(status: number, code: AfCode, message: string, headers: Record<string, string> = {}): SimResponse {
  return jsonResponse(status, { error: { code, message } }, headers);
}

/** Body of a 404 for paths the simulator does not know (not an AF code: no such endpoint exists). */
export function notFound(method: string, path: string): SimResponse {
  return jsonResponse(404, {
    error: { code: 'NotFound', message: `The simulator has no route for ${method} ${path}.` },
  });
}

export interface EntraErrorSpec {
  status: number;
  error: string;
  code: number;
  description: string;
}

/**
 * Entra ID error response. AADSTS codes used (descriptions paraphrase Entra's):
 * 900144 missing parameter, 70003 unsupported grant, 90002 tenant not found, 700016 unknown
 * application, 7000215 invalid secret, 7000216 no credential, 50027 malformed JWT, 700027 unknown
 * signing certificate, 7000274 bad signature, 700021 iss/sub ≠ client_id, 700212 wrong aud,
 * 700024 outside validity time, 700025 (simulator: replayed jti), 1002012 scope without /.default,
 * 500011 unknown resource.
 */
export function entraError(spec: EntraErrorSpec, nowMs: number): SimResponse {
  const traceId = randomUUID();
  const correlationId = randomUUID();
  const timestamp = new Date(nowMs).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  return jsonResponse(spec.status, {
    error: spec.error,
    error_description: `AADSTS${spec.code}: ${spec.description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
    error_codes: [spec.code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `https://login.microsoftonline.com/error?code=${spec.code}`,
  });
}
