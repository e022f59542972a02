/**
 * One error type for everything the collector reports to a user. `code` is stable (match on it,
 * never on the message); `fatal` says whether retrying the same call can ever succeed.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'AUTH_FAILED'
  | 'API_ERROR'
  | 'API_THROTTLED'
  | 'API_UNAVAILABLE'
  | 'API_BAD_RESPONSE'
  | 'SINK_ERROR'
  | 'SINK_ACK_TIMEOUT'
  | 'RECORD_TOO_LARGE'
  | 'STATE_CORRUPT'
  | 'STATE_IO';

export class CollectorError extends Error {
  readonly code: ErrorCode;
  readonly fatal: boolean;
  /** AF code from the Management API (e.g. AF20022), or AADSTS code from Entra ID, when known. */
  readonly apiCode?: string;
  /** HTTP status of the failing response, when there was one. */
  readonly status?: number;
  /** Seconds the server asked us to wait (Retry-After), when it did. */
  readonly retryAfterSeconds?: number;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { fatal?: boolean; apiCode?: string; status?: number; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CollectorError';
    this.code = code;
    this.fatal = opts.fatal ?? false;
    this.apiCode = opts.apiCode;
    this.status = opts.status;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}

/** A short, single-line description of any thrown value, for logs and status records. */
export function describeError(err: unknown): string {
  if (err instanceof CollectorError) return `${err.code}${err.apiCode ? ` ${err.apiCode}` : ''}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
