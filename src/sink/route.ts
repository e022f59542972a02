import type { ContentType } from '../management-api/content-types.ts';

/**
 * Routing (DESIGN.md "Routing"): the tag names the Devo table; the record itself is never touched.
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
  /** The tag of a record with this `Workload` (undefined: absent or not a string) from this content type. */
  tag(workload: string | undefined, contentType: ContentType): string;
  /** The same for a parsed record. */
  tagFor(record: Record<string, unknown>, contentType: ContentType): string;
}

export function createRouter(tagTemplate: string, aliases: Record<string, string>): Router {
  const cache = new Map<string, string>(); // few distinct workloads: the tag is built once per (workload, content type)
  const lowerAliases = new Map(Object.entries(aliases).map(([k, v]) => [k.toLowerCase(), v]));
  const build = (table: string) => tagTemplate.replaceAll('{table}', table);
  const tag = (workload: string | undefined, contentType: ContentType): string => {
    const key = (workload ?? '') + '\u0000' + contentType;
    let t = cache.get(key);
    if (t === undefined) {
      const table = workload ? (lowerAliases.get(workload.toLowerCase()) ?? defaultTable(workload)) : '';
      t = build(table || CONTENT_TYPE_TABLES[contentType]);
      if (cache.size < 10_000) cache.set(key, t); // a hostile blob with endless workloads must not grow memory
    }
    return t;
  };
  return {
    tag,
    tagFor: (record, contentType) => tag(typeof record.Workload === 'string' ? record.Workload : undefined, contentType),
  };
}
