/** A record ready for the shipper: routed tag, event time, and the audit record as the API sent it. */
export interface RoutedRecord {
  tag: string;
  /** Event time, ms since epoch. */
  timeMs: number;
  /** Sub-millisecond part of the event time, in nanoseconds (0..999,999). */
  extraNanos?: number;
  record: Record<string, unknown>;
}

export interface Sink {
  /**
   * Delivers records. Resolves only when every record is safe on the other side (Forward: every
   * frame acked), retrying with backoff for as long as it takes; rejects only when `signal`
   * aborts or a record can never be sent (e.g. larger than a frame).
   */
  send(records: RoutedRecord[], signal: AbortSignal): Promise<void>;
  /** Sends one record and waits for it, with no retry (the `check` command's test record). */
  probe(record: RoutedRecord, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
  readonly description: string;
}
