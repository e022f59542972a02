import type { ContentType } from '../management-api/content-types.ts';
import type { CloudName } from './clouds.ts';
import { API_RETENTION_MS } from '../management-api/limits.ts';

/**
 * The validated, fully defaulted configuration. Durations are milliseconds. Secrets are held in
 * `Secret` wrappers whose toString/toJSON never reveal the value, so a config object can be logged.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string, readonly source: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return `[secret from ${this.source}]`;
  }
  toJSON(): string {
    return this.toString();
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

export type Credential =
  | { kind: 'secret'; secret: Secret }
  | {
      kind: 'certificate';
      privateKey: Secret;
      certificatePem: string;
      /** Where the key came from, for messages (never the key itself). */
      privateKeyFile: string;
      certificateFile: string;
    };

/**
 * The proxy for the Microsoft side (token and API calls alike), from `api.proxy` or, when that is
 * not set, from HTTPS_PROXY / https_proxy (src/support/proxy.ts decides per host).
 */
export interface ProxyConfig {
  /** `http://host:port` or `https://host:port`, the port always written; never credentials. */
  url: string;
  /** Where it was set, for messages: `api.proxy`, `HTTPS_PROXY` or `https_proxy`. */
  source: string;
  /** Basic credentials for the proxy (api.proxy_username, or the user info of HTTPS_PROXY). */
  username?: string;
  password?: Secret;
  /** Hosts reached directly: normalised NO_PROXY entries (api.no_proxy, or NO_PROXY / no_proxy). */
  noProxy: string[];
  /** Where noProxy came from: `api.no_proxy`, `NO_PROXY` or `no_proxy`; undefined when none. */
  noProxySource?: string;
}

export interface TenantConfig {
  /** Label used in logs, status records and state keys; defaults to the tenant id. */
  name: string;
  tenantId: string;
  clientId: string;
  cloud: CloudName | 'custom';
  /** e.g. https://manage.office.com — the API root and the token resource. */
  apiUrl: string;
  /** e.g. https://login.microsoftonline.com — the Entra ID authority host. */
  loginUrl: string;
  credential: Credential;
  /** Quota key for every call (reference §3, §9.8); defaults to the tenant id. */
  publisherIdentifier: string;
  /** Requests a minute this tenant's calls may make together (all content types). */
  maxRequestsPerMinute: number;
  contentTypes: ContentType[];
}

export interface TlsClientConfig {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
  /** Verify the receiver's certificate (default true). */
  verify: boolean;
}

export interface ForwardOutputConfig {
  host: string;
  port: number;
  unixSocket?: string;
  tls?: TlsClientConfig;
  ackTimeoutMs: number;
  /** No Forward frame is larger than this (Fluent Bit closes the connection above buffer_max_size). */
  maxFrameBytes: number;
  /**
   * A single record larger than maxFrameBytes goes alone in its own frame, up to this size;
   * a larger one is dead-lettered (Fluent Bit's buffer_max_size default is 6,144,000 B).
   */
  maxRecordBytes: number;
  /** Frames sent and not yet acked, at most (bounds memory together with fetch concurrency). */
  maxFramesInFlight: number;
}

/**
 * What each Forward record holds: `record` is the audit record as the API sent it; `devo` is
 * `{devo_tag, message}` with `message` the record's JSON, for Fluent Bit's syslog output to Devo
 * without scripting (syslog_appname_key devo_tag, syslog_message_key message).
 */
export type RecordFormat = 'record' | 'devo';

export interface OutputConfig {
  type: 'forward' | 'stdout';
  recordFormat: RecordFormat;
  forward: ForwardOutputConfig;
}

export interface RoutingConfig {
  /** Template for the record tag; `{table}` is replaced by the Devo table of the record. */
  tagTemplate: string;
  /** Workload → table aliases, applied before the default (lower-case, alphanumerics only). */
  workloadTables: Record<string, string>;
}

export interface MetricsConfig {
  /** Where the metrics HTTP server listens (`metrics.listen: HOST:PORT`); undefined: nothing listens. */
  listen?: { host: string; port: number };
  /** /healthz answers 503 when a feed made no progress, or the output got no ack, for this long. */
  stallAfterMs: number;
}

export interface Config {
  tenants: TenantConfig[];
  output: OutputConfig;
  routing: RoutingConfig;
  status: {
    tag: string;
    intervalMs: number;
    /** A feed without progress for this long says so in its status record (`stalled`). */
    stallAfterMs: number;
  };
  state: { path: string };
  polling: {
    intervalMs: number;
    initialLookbackMs: number;
    overlapMs: number;
    /** How often the whole retention is re-listed for late blobs; 0 = never. */
    sweepIntervalMs: number;
    /** Blob downloads running at once per tenant. */
    concurrency: number;
    requestTimeoutMs: number;
    /** Attempts for one API call before the blob is parked in the retry queue. */
    maxAttempts: number;
  };
  /**
   * The Microsoft side: an extra CA (TLS inspection proxies, the simulator) and the proxy every
   * call to Entra ID and the API goes through (undefined: direct).
   */
  api: { caFile?: string; proxy?: ProxyConfig };
  /** Prometheus /metrics and /healthz (src/metrics/): off unless `listen` is set. */
  metrics: MetricsConfig;
  /** Absolute path of the file the config was read from (relative paths resolve against its folder). */
  sourceFile: string;
}

/**
 * Defaults, with their reasons.
 */
export const DEFAULTS = {
  // Fluent Bit's documented forward port.
  forwardHost: '127.0.0.1',
  forwardPort: 24224,
  // An ack means "in Fluent Bit's input buffer" and comes within milliseconds on loopback;
  // 30 s leaves room for a filesystem-buffered input under load before we re-send.
  ackTimeoutMs: 30_000,
  // Well under Fluent Bit's buffer_max_size default (6,144,000 B); the default.
  maxFrameBytes: 1024 * 1024,
  // Fits Fluent Bit's buffer_max_size default (6,144,000 B) with the frame's own overhead.
  maxRecordBytes: 6_000_000,
  maxFramesInFlight: 8,
  tagTemplate: 'cloud.office365.management.{table}',
  statusTag: 'm365forward.status',
  statusIntervalMs: 60_000,
  // Half an hour without a successful poll is beyond any normal API hiccup (retries back off to
  // minutes), well before the hours of lag an analyst would notice in the SIEM.
  stallAfterMs: 30 * 60_000,
  statePath: './state/m365-forward.state.json',
  // The API publishes new blobs every few minutes; one minute keeps lag low at ~5 calls/min/feed,
  // far below the 2,000 requests/minute tenant quota (reference §5).
  pollIntervalMs: 60_000,
  // Content is kept ~7 days; 24 h is a sane first backfill, 7 days the most the API allows.
  initialLookbackMs: 24 * 3600_000,
  maxLookbackMs: API_RETENTION_MS,
  // Blobs can be listed minutes to hours after their contentCreated (reference §4 Latency);
  // re-listing 2 h before the cursor catches them, the done-set keeps them from being re-sent.
  overlapMs: 2 * 3600_000,
  // Blobs listed later than the overlap (Microsoft documents delays of many hours) are found by
  // re-listing the whole retention; hourly costs ~7 listing calls per content type per hour.
  sweepIntervalMs: 3600_000,
  // The API answers in 100-800 ms; at the request budget below a tenant keeps ~8 downloads busy
  // (issue 7 measured +96% from 4 to 8); more only adds memory (downloads x blob size).
  concurrency: 8,
  // Microsoft allows about 2,000 requests a minute per PublisherIdentifier (reference §5); 1,800
  // leaves room for a burst and for anything else using the same publisher id.
  maxRequestsPerMinute: 1800,
  requestTimeoutMs: 60_000,
  maxAttempts: 5,
} as const;
