/**
 * Record codec throughput: `node --import tsx test/bench/codec.bench.ts`. Prints figures, asserts
 * nothing (timings are not tests).
 *
 * Over ~20 MB of realistic 1–2 KB audit records, in content blobs of 1,000 records:
 *  1. RecordReader alone (split + routing fields): the `devo` format's work per blob;
 *  2. RecordReader + msgpack transcode into a reused ByteWriter: the `record` format's work;
 *  3. for comparison, what the collector did before: JSON.parse of the blob, then per record
 *     JSON.stringify (devo) / @msgpack/msgpack encode (record), and msgpackr's pack (the fastest JS
 *     encoder) when it is installed (`npm install --no-save msgpackr`: never a project dependency).
 *
 * Each case runs once to warm up, then BENCH_ROUNDS times (default 5); the best and the median
 * round are printed. BENCH_MB sets the input size; BENCH_ONLY=text runs only the cases whose name
 * contains the text (to profile one, add --cpu-prof).
 */
import os from 'node:os';
import { encode } from '@msgpack/msgpack';
import { ByteWriter } from '../../src/record/byte-writer.ts';
import { RecordReader } from '../../src/record/json-records.ts';

const line = (s: string) => process.stdout.write(s + '\n');
const TARGET_MB = Number(process.env.BENCH_MB ?? 20);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const RECORDS_PER_BLOB = 1000;

// ---- input: deterministic, realistic records (shapes of the Management API schema, reference §7) ----

let seed = 0x2545f491;
/** xorshift32: deterministic across runs, so figures compare between commits. */
function rnd(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
}
const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
const hex = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[int(0, 15)]).join('');
const guid = () => `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`;
const iso = () => new Date(Date.UTC(2024, 4, int(1, 28), int(0, 23), int(0, 59), int(0, 59))).toISOString().slice(0, 19);

const USERS = ['adele.vance@contoso.com', 'jose.alvarez@contoso.com', 'zoe.mueller@contoso.com', 'li.na@contoso.com', 'siobhan.obrien@contoso.com'];
const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80',
  'Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17531; Pro)',
  'MSAL.NetCore/4.60.3.0 MSAL.NetCore/4.60.3.0',
];
const FILES = ['Q3 budget (final).xlsx', 'Übersicht Verträge 2024.docx', '会议记录 2024-05.docx', 'Roadmap 🚀 FY25.pptx', 'Contract "Northwind" signed.pdf', 'notes\\old\\readme.txt'];

function sharePoint(): Record<string, unknown> {
  const file = pick(FILES);
  const site = `https://contoso.sharepoint.com/sites/${pick(['finance', 'hr', 'legal', 'engineering'])}`;
  return {
    AppAccessContext: { AADSessionId: guid(), CorrelationId: guid(), UniqueTokenId: hex(22) },
    CreationTime: iso(),
    Id: guid(),
    Operation: pick(['FileAccessed', 'FileModified', 'FileDownloaded', 'FileUploaded']),
    OrganizationId: guid(),
    RecordType: 6,
    UserKey: `i:0h.f|membership|${hex(16)}@live.com`,
    UserType: 0,
    Version: 1,
    Workload: pick(['SharePoint', 'OneDrive']),
    ClientIP: `${int(1, 223)}.${int(0, 255)}.${int(0, 255)}.${int(1, 254)}`,
    ObjectId: `${site}/Shared Documents/${file}`,
    UserId: pick(USERS),
    CorrelationId: guid(),
    EventSource: 'SharePoint',
    ItemType: 'File',
    ListId: guid(),
    ListItemUniqueId: guid(),
    Site: guid(),
    UserAgent: pick(AGENTS),
    WebId: guid(),
    HighPriorityMediaProcessing: false,
    SourceFileExtension: file.split('.').pop(),
    SiteUrl: `${site}/`,
    SourceFileName: file,
    SourceRelativeUrl: 'Shared Documents',
    FileSizeBytes: int(1000, 50_000_000),
  };
}

function exchange(): Record<string, unknown> {
  const params = Array.from({ length: int(2, 8) }, (_, i) => ({ Name: pick(['Identity', 'DomainController', 'Force', 'ForwardingSmtpAddress', 'AccessRights']) + i, Value: pick(['True', '', `smtp:${pick(USERS)}`, `EURPR01A002.prod.outlook.com/Microsoft Exchange Hosted Organizations/contoso.onmicrosoft.com/${guid()}`]) }));
  return {
    CreationTime: iso(),
    Id: guid(),
    Operation: pick(['Set-Mailbox', 'Add-MailboxPermission', 'New-InboxRule', 'MailItemsAccessed']),
    OrganizationId: guid(),
    RecordType: 1,
    ResultStatus: 'True',
    UserKey: 'NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)',
    UserType: 3,
    Version: 1,
    Workload: 'Exchange',
    ClientIP: `[2603:10a6:${hex(4)}::${hex(2)}]:${int(1024, 65535)}`,
    ObjectId: `EURPR01A002.prod.outlook.com/Microsoft Exchange Hosted Organizations/contoso.onmicrosoft.com/${guid()}`,
    UserId: 'NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)',
    AppId: '',
    ClientAppId: '',
    ExternalAccess: true,
    OrganizationName: 'contoso.onmicrosoft.com',
    OriginatingServer: `HE1PR0102MB${int(1000, 9999)} (15.20.2707.017)`,
    Parameters: params,
    SessionId: guid(),
  };
}

function azureAd(): Record<string, unknown> {
  return {
    CreationTime: iso(),
    Id: guid(),
    Operation: 'UserLoggedIn',
    OrganizationId: guid(),
    RecordType: 15,
    ResultStatus: 'Success',
    UserKey: guid(),
    UserType: 0,
    Version: 1,
    Workload: 'AzureActiveDirectory',
    ClientIP: `${int(1, 223)}.${int(0, 255)}.${int(0, 255)}.${int(1, 254)}`,
    ObjectId: guid(),
    UserId: pick(USERS),
    AzureActiveDirectoryEventType: 1,
    ExtendedProperties: [
      { Name: 'ResultStatusDetail', Value: 'Redirect' },
      { Name: 'UserAgent', Value: pick(AGENTS) },
      { Name: 'RequestType', Value: 'OAuth2:Authorize' },
      { Name: 'KeepMeSignedIn', Value: 'true' },
    ],
    ModifiedProperties: [],
    Actor: [
      { ID: guid(), Type: 0 },
      { ID: pick(USERS), Type: 5 },
    ],
    ActorContextId: guid(),
    ActorIpAddress: `${int(1, 223)}.${int(0, 255)}.${int(0, 255)}.${int(1, 254)}`,
    InterSystemsId: guid(),
    IntraSystemId: guid(),
    SupportTicketId: '',
    Target: [{ ID: guid(), Type: 0 }],
    TargetContextId: guid(),
    ApplicationId: guid(),
    DeviceProperties: [
      { Name: 'OS', Value: 'Windows 10' },
      { Name: 'BrowserType', Value: 'Edge' },
      { Name: 'IsCompliantAndManaged', Value: 'False' },
      { Name: 'SessionId', Value: guid() },
    ],
    ErrorNumber: '0',
    // JSON inside a string (the API does this): escaped quotes on the hot path.
    AdditionalDetails: JSON.stringify({ riskLevel: 'none', mfa: { method: 'PhoneAppNotification', satisfied: true } }),
    RiskScore: 0.25,
  };
}

function buildBlobs(targetBytes: number): { blobs: Buffer[]; records: number; bytes: number } {
  const blobs: Buffer[] = [];
  let records = 0;
  let bytes = 0;
  while (bytes < targetBytes) {
    const texts: string[] = [];
    for (let i = 0; i < RECORDS_PER_BLOB; i++) texts.push(JSON.stringify(pick([sharePoint, exchange, azureAd])()));
    const body = Buffer.from(`[${texts.join(',')}]`);
    blobs.push(body);
    records += texts.length;
    bytes += body.length;
  }
  return { blobs, records, bytes };
}

// ---- the cases ----------------------------------------------------------------------------------

const { blobs, records, bytes } = buildBlobs(TARGET_MB * 1e6);
let sink = 0; // results feed this so no case is optimised away

function readerOnly(): void {
  for (const body of blobs) {
    const r = new RecordReader(body);
    for (let s = r.next(); s; s = r.next()) sink += s.end - s.start + (s.workload?.length ?? 0);
  }
}

const writer = new ByteWriter();
function readerTranscode(): void {
  for (const body of blobs) {
    writer.reset();
    const r = new RecordReader(body, { writer, reserve: 11 });
    for (let s = r.next(); s; s = r.next()) sink += s.mpEnd - s.mpStart + (s.workload?.length ?? 0);
  }
}

function parseStringify(): void {
  for (const body of blobs) {
    for (const rec of JSON.parse(body.toString()) as Record<string, unknown>[]) sink += JSON.stringify(rec).length + String(rec.Workload).length;
  }
}

function parseEncode(): void {
  for (const body of blobs) {
    for (const rec of JSON.parse(body.toString()) as Record<string, unknown>[]) sink += encode(rec).length + String(rec.Workload).length;
  }
}

function time(fn: () => void): number[] {
  fn();
  const rounds: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    rounds.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return rounds.sort((a, b) => a - b);
}

/** BENCH_ONLY=text runs only the cases whose name contains it (for profiling one case). */
const only = process.env.BENCH_ONLY;

function report(name: string, fn: () => void): void {
  if (only && !name.includes(only)) return;
  const r = time(fn);
  const best = r[0]!;
  const median = r[Math.floor(r.length / 2)]!;
  const fmt = (s: number) => `${(bytes / 1e6 / s).toFixed(0).padStart(4)} MB/s ${Math.round(records / s).toString().padStart(8)} records/s`;
  line(`${name.padEnd(44)} best ${fmt(best)}   median ${fmt(median)}`);
}

line(`codec bench — node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${new Date().toISOString()}`);
line(`input: ${records} records, ${(bytes / 1e6).toFixed(1)} MB in ${blobs.length} blobs, ${Math.round(bytes / records)} B/record on average; ${ROUNDS} rounds after a warm-up`);
report('RecordReader: split + fields (devo)', readerOnly);
report('RecordReader + msgpack transcode (record)', readerTranscode);
report('JSON.parse + JSON.stringify each (old devo)', parseStringify);
report('JSON.parse + @msgpack/msgpack encode (old)', parseEncode);
try {
  const mod = (await import('msgpackr' as string)) as { pack: (v: unknown) => Buffer };
  const pack = mod.pack;
  report('JSON.parse + msgpackr pack', () => {
    for (const body of blobs) {
      for (const rec of JSON.parse(body.toString()) as Record<string, unknown>[]) sink += pack(rec).length + String(rec.Workload).length;
    }
  });
} catch {
  line('msgpackr not installed (npm install --no-save msgpackr to compare)');
}
if (sink === 42) line('');
