import { parseApiTime } from '../management-api/dates.ts';
import type { ContentType } from '../management-api/content-types.ts';

/**
 * Routing (DESIGN.md "Routing"): the tag names the Devo table, the time is the event's own
 * CreationTime, and the record itself is never touched.
 */

/** Table per content type, for records without a usable Workload. */
export const CONTENT_TYPE_TABLES: Record<ContentType, string> = {
  'Audit.AzureActiveDirectory': 'azureactivedirectory',
  'Audit.Exchange': 'exchange',
  'Audit.SharePoint': 'sharepoint',
  'Audit.General': 'general',
  'DLP.All': 'dlp',
};

/** Default Workload → table: lower-case, alphanumerics only ("Dynamics 365" → "dynamics365"). */
export function defaultTable(workload: string): string {
  return workload.toLowerCase().replace(/[^a-z0-9]/g, '');
}

export interface Router {
  tagFor(record: Record<string, unknown>, contentType: ContentType): string;
}

export function createRouter(tagTemplate: string, aliases: Record<string, string>): Router {
  const cache = new Map<string, string>(); // few distinct workloads: avoid re-building the tag per record
  const lowerAliases = new Map(Object.entries(aliases).map(([k, v]) => [k.toLowerCase(), v]));
  const tag = (table: string) => tagTemplate.replaceAll('{table}', table);
  return {
    tagFor(record, contentType) {
      const w = record.Workload;
      const key = typeof w === 'string' ? w : '';
      let t = cache.get(key + '\u0000' + contentType);
      if (t === undefined) {
        const table = key ? (lowerAliases.get(key.toLowerCase()) ?? defaultTable(key)) : '';
        t = tag(table || CONTENT_TYPE_TABLES[contentType]);
        cache.set(key + '\u0000' + contentType, t);
      }
      return t;
    },
  };
}

/**
 * Event time of a record in ms: its CreationTime as UTC; when that is missing or unparseable,
 * the blob's contentCreated (and the caller counts it), never "now".
 */
export function recordTime(record: Record<string, unknown>, fallbackMs: number): { ms: number; fromRecord: boolean } {
  const t = parseApiTime(record.CreationTime);
  return t === undefined ? { ms: fallbackMs, fromRecord: false } : { ms: t, fromRecord: true };
}

/**
 * The record as it goes on the wire. `devo`: `{devo_tag, message}`, the tag naming the Devo table
 * and `message` the record's JSON (the same JSON value the API delivered; key order kept).
 */
export function wireRecord(tag: string, record: Record<string, unknown>, format: 'record' | 'devo'): Record<string, unknown> {
  return format === 'devo' ? { devo_tag: tag, message: JSON.stringify(record) } : record;
}
