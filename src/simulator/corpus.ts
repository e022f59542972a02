/**
 * User-supplied NDJSON corpora: parse, classify into content types, and keep each record's original
 * line text so the simulator serves it byte for byte (literals such as `1156492.00` or `1E1`, and
 * duplicated keys, survive; JSON.stringify would rewrite them). Reference §6 for the mapping.
 */
import type { BlobBody } from './content-store.ts';
import type { AuditRecord, ContentType } from './types.ts';

/** Original JSON text of records that came from parseCorpus, keyed by the parsed object. */
const rawText = new WeakMap<object, { text: string; canonical: string }>();

/**
 * One JSON object per line; blank lines skipped. A bad line throws an Error naming `file:line` and
 * the problem (invalid JSON, or valid JSON that is not an object).
 */
export function parseCorpus(text: string, fileName: string): AuditRecord[] {
  const out: AuditRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    const where = `${fileName}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new Error(`${where}: not valid JSON (${(err as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
      throw new Error(`${where}: expected one JSON object per line, found ${kind}`);
    }
    const record = value as AuditRecord;
    rawText.set(record, { text: line.trim(), canonical: JSON.stringify(record) });
    out.push(record);
  }
  return out;
}

/**
 * The record's original text if it came from parseCorpus and has not been changed since (checked by
 * comparing against its parse-time canonical form), else its JSON.stringify.
 */
export function recordJson(record: AuditRecord): string {
  const raw = rawText.get(record);
  if (raw) {
    const now = JSON.stringify(record);
    if (now === raw.canonical) return raw.text;
    return now;
  }
  return JSON.stringify(record);
}

/** Serialise a blob body: a JSON array of records. */
export function serialiseRecords(records: AuditRecord[]): string {
  return `[${records.map(recordJson).join(',')}]`;
}

/** A blob body rendered once, as the bytes the simulator serves (corpus lines kept byte-exact). */
export function renderRecords(records: AuditRecord[]): BlobBody {
  return { bytes: Buffer.from(serialiseRecords(records), 'utf8'), count: records.length };
}

const DLP_RECORD_TYPES = new Set([11, 13, 33, 63, 107]);

/**
 * Which content type a record belongs to (reference §6): DLP events (Operation Dlp*, or a DLP
 * RecordType) → DLP.All; then by Workload; anything else, including a missing Workload,
 * → Audit.General.
 */
export function contentTypeForRecord(r: AuditRecord): ContentType {
  const op = r['Operation'];
  const rtRaw = r['RecordType'];
  const rt = typeof rtRaw === 'number' ? rtRaw : typeof rtRaw === 'string' && /^\d+$/.test(rtRaw) ? Number(rtRaw) : NaN;
  if ((typeof op === 'string' && op.startsWith('Dlp')) || DLP_RECORD_TYPES.has(rt)) return 'DLP.All';
  const wl = typeof r['Workload'] === 'string' ? (r['Workload'] as string).toLowerCase() : '';
  switch (wl) {
    case 'azureactivedirectory':
      return 'Audit.AzureActiveDirectory';
    case 'exchange':
      return 'Audit.Exchange';
    case 'sharepoint':
    case 'onedrive':
      return 'Audit.SharePoint';
    default:
      return 'Audit.General';
  }
}
