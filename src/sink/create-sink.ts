import type { Config } from '../config/schema.ts';
import type { WireFormat } from '../record/encode.ts';
import type { Logger } from '../support/logger.ts';
import { ForwardSink } from './forward-sink.ts';
import { StdoutSink } from './stdout-sink.ts';
import type { Sink } from './types.ts';

export function createSink(config: Config, log: Logger): Sink {
  return config.output.type === 'stdout' ? new StdoutSink() : new ForwardSink(config.output.forward, log);
}

/** How records are encoded for this config's output. */
export function wireFormat(config: Config): WireFormat {
  return { wire: config.output.type === 'stdout' ? 'json-line' : 'forward', record: config.output.recordFormat };
}
