/** Types of parse-prometheus-text-format 1.1.1 (a devDependency without its own), as far as the tests use it. */
declare module 'parse-prometheus-text-format' {
  /** One sample (with its labels); histograms carry buckets (by `le`), count and sum instead of value. */
  export interface ParsedSample {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  export interface ParsedFamily {
    name: string;
    help: string;
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
    metrics: ParsedSample[];
  }
  /** Parses the Prometheus text format; throws on a line that is not valid. */
  export default function parsePrometheusTextFormat(text: string): ParsedFamily[];
}
