import type { EncodedEntry } from '../record/encode.ts';

export type { EncodedEntry };

/** What an output is doing, for stall detection, status and error messages. */
export interface SinkHealth {
  /** Entries are waiting for an ack (or a write) right now. */
  waiting: boolean;
  /** How long the output has made no progress while entries wait (0 when nothing waits). */
  stalledMs: number;
  /** The last connection or protocol problem, cleared by the next ack. */
  lastError?: string;
}

export interface Sink {
  readonly description: string;
  /** How records are encoded for this output (record/encode.ts). */
  readonly wire: 'forward' | 'json-line';
  /**
   * Delivers entries. Resolves only when every one is safe on the other side (Forward: every frame
   * acked), retrying for as long as it takes; rejects only when `signal` aborts or the output is
   * closed or unusable for good (stdout gone). `onQueued` is called once the entries are taken in
   * (queued within the output's memory bound), before their acks: the caller may then fetch more
   * while these wait.
   */
  send(entries: EncodedEntry[], signal: AbortSignal, onQueued?: () => void): Promise<void>;
  health(now?: number): SinkHealth;
  close(): Promise<void>;
}
