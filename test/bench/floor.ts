/**
 * The floor of issue 7's scenario 2: the shortest correct code that does the collector's record
 * path (without its checkpoint, retries, status or dead letters), to measure the collector against.
 *
 *   node --import tsx test/bench/floor.ts ENDPOINT.json RECEIVER_PORT LOOKBACK_HOURS
 *
 * ENDPOINT.json holds the simulator's ready line (apiUrl, loginUrl, tenantId, clientId,
 * clientSecret, caFile). It takes a token, starts the five subscriptions, lists every content type
 * over the look-back in 24-hour windows following NextPageUri, downloads every blob over HTTPS
 * (keep-alive, DOWNLOADS at once), parses it (JSON.parse), and for each record writes the Forward
 * entry `[EventTime(CreationTime), record]` (msgpack, one reused @msgpack/msgpack Encoder: the
 * logger's own encoder) into a per-tag buffer, tagged as the collector tags by default
 * (`cloud.office365.management.<workload>`). A buffer of FRAME_BYTES leaves as one PackedForward
 * frame with a `chunk` option; at most IN_FLIGHT frames wait for their ack. It ends when every
 * frame is acked and prints `{"records","blobs","bytes","frames"}`; any failure exits 1 (no retry).
 *
 * It is "correct" for the synthetic tenant: JSON.parse keeps every value of these records exactly
 * (JSON.stringify wrote them; integers stay below 2^53), key order included.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { decodeMultiStream, Encoder } from '@msgpack/msgpack';

const DOWNLOADS = 8;
const FRAME_BYTES = 512 * 1024;
const IN_FLIGHT = 16;
const CONTENT_TYPES = ['Audit.AzureActiveDirectory', 'Audit.Exchange', 'Audit.SharePoint', 'Audit.General', 'DLP.All'];
const TYPE_TABLE: Record<string, string> = { 'Audit.AzureActiveDirectory': 'azureactivedirectory', 'Audit.Exchange': 'exchange', 'Audit.SharePoint': 'sharepoint', 'Audit.General': 'general', 'DLP.All': 'dlp' };

const [endpointFile, portText, lookbackText] = process.argv.slice(2);
const ep = JSON.parse(readFileSync(endpointFile!, 'utf8')) as { apiUrl: string; loginUrl: string; tenantId: string; clientId: string; clientSecret: string; caFile: string };
const agent = new https.Agent({ keepAlive: true, maxSockets: DOWNLOADS + CONTENT_TYPES.length, ca: readFileSync(ep.caFile) });

function fail(message: string): never {
  process.stderr.write(`floor: ${message}\n`);
  process.exit(1);
}

function request(method: string, url: string, headers: Record<string, string>, body?: string): Promise<{ status: number; next?: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, next: res.headers['nextpageuri'] as string | undefined, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

// ---- the Forward connection: frames out, acks in ----
const socket = net.connect(Number(portText), '127.0.0.1');
socket.setNoDelay(true);
await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
/** Chunk ids of frames sent and not yet acked. */
const waiting = new Set<string>();
/** Senders waiting for a free in-flight slot (and the final wait for every ack). */
let slotWaiters: (() => void)[] = [];
const slotFreed = () => {
  const w = slotWaiters;
  slotWaiters = [];
  for (const f of w) f();
};
const nextSlot = () => new Promise<void>((r) => slotWaiters.push(r));
void (async () => {
  try {
    for await (const msg of decodeMultiStream(socket)) {
      const ack = (msg as { ack?: string }).ack;
      if (ack === undefined || !waiting.delete(ack)) fail(`unexpected answer from the receiver: ${JSON.stringify(msg)}`);
      slotFreed();
    }
  } catch (err) {
    fail(`receiver connection: ${(err as Error).message}`);
  }
  if (waiting.size > 0) fail(`the receiver closed the connection with ${waiting.size} frames unacked`);
})();

const chunkPrefix = randomBytes(8);
let frames = 0;
/** Sends one PackedForward frame `[tag, bin(entries), {chunk, size}]` and registers its ack. */
async function sendFrame(tag: string, entries: Buffer, count: number): Promise<void> {
  while (waiting.size >= IN_FLIGHT) await nextSlot();
  const id = Buffer.alloc(16);
  chunkPrefix.copy(id);
  id.writeUInt32BE(frames++, 12);
  const chunk = id.toString('base64');
  const tagBytes = Buffer.from(tag);
  const head = Buffer.alloc(1 + 2 + tagBytes.length + 5);
  let at = 0;
  head[at++] = 0x93; // array of 3
  head[at++] = 0xd9; // str 8
  head[at++] = tagBytes.length;
  at += tagBytes.copy(head, at);
  head[at++] = 0xc6; // bin 32
  head.writeUInt32BE(entries.length, at);
  const opts = Buffer.concat([Buffer.from([0x82, 0xa5]), Buffer.from('chunk'), Buffer.from([0xa0 | chunk.length]), Buffer.from(chunk), Buffer.from([0xa4]), Buffer.from('size'), Buffer.from([0xce, 0, 0, 0, 0])]);
  opts.writeUInt32BE(count, opts.length - 4);
  waiting.add(chunk);
  socket.cork();
  socket.write(head);
  socket.write(entries);
  socket.write(opts);
  socket.uncork();
}

// ---- records → entries, per tag ----
const encoder = new Encoder();
const pending = new Map<string, { parts: Buffer[]; bytes: number; count: number }>();
let records = 0;
let bytes = 0;
let blobs = 0;

/** EventTime (seconds, nanoseconds) of a CreationTime such as 2024-05-01T10:00:00 or …:00.1234567Z, in UTC. */
function eventTime(ct: unknown): [number, number] {
  const m = typeof ct === 'string' ? /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z?$/.exec(ct) : null;
  if (!m) {
    const now = Date.now();
    return [Math.floor(now / 1000), (now % 1000) * 1e6];
  }
  return [Date.parse(`${m[1]}Z`) / 1000, m[2] ? Number(m[2].padEnd(9, '0')) : 0];
}

async function addBlob(contentType: string, body: Buffer): Promise<void> {
  const list = JSON.parse(body.toString('utf8')) as Record<string, unknown>[];
  if (!Array.isArray(list)) fail('a blob is not a JSON array');
  blobs++;
  bytes += body.length;
  for (const record of list) {
    const w = record.Workload;
    const table = (typeof w === 'string' ? w.toLowerCase().replace(/[^a-z0-9]/g, '') : '') || TYPE_TABLE[contentType]!;
    const tag = `cloud.office365.management.${table}`;
    const [sec, nsec] = eventTime(record.CreationTime);
    const encoded = encoder.encode(record); // a view into the encoder's buffer: copied below
    const e = Buffer.allocUnsafe(11 + encoded.length);
    e[0] = 0x92; // [time, record]
    e[1] = 0xd7; // fixext 8
    e[2] = 0x00; // EventTime
    e.writeUInt32BE(sec, 3);
    e.writeUInt32BE(nsec, 7);
    e.set(encoded, 11);
    let p = pending.get(tag);
    if (!p) pending.set(tag, (p = { parts: [], bytes: 0, count: 0 }));
    p.parts.push(e);
    p.bytes += e.length;
    p.count++;
    records++;
    if (p.bytes >= FRAME_BYTES) {
      pending.delete(tag);
      await sendFrame(tag, Buffer.concat(p.parts, p.bytes), p.count);
    }
  }
}

// ---- the API: token, subscriptions, listings, blobs ----
const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: ep.clientId, client_secret: ep.clientSecret, scope: `${ep.apiUrl}/.default` }).toString();
const tok = await request('POST', `${ep.loginUrl}/${ep.tenantId}/oauth2/v2.0/token`, { 'content-type': 'application/x-www-form-urlencoded' }, form);
if (tok.status !== 200) fail(`token: HTTP ${tok.status}`);
const auth = { authorization: `Bearer ${(JSON.parse(tok.body.toString()) as { access_token: string }).access_token}` };
const feed = `${ep.apiUrl}/api/v1.0/${ep.tenantId}/activity/feed`;
const pub = `PublisherIdentifier=${ep.tenantId}`;

const queue: { contentType: string; uri: string }[] = [];
let next = 0; // the queue's head (shift() on a long array would copy it each time)
let listing = CONTENT_TYPES.length;
/** Downloaders idle until a listing page (or the end of all listings) arrives. */
let idle: (() => void)[] = [];
const wake = () => {
  const w = idle;
  idle = [];
  for (const f of w) f();
};

async function listAll(contentType: string): Promise<void> {
  const started = await request('POST', `${feed}/subscriptions/start?contentType=${contentType}&${pub}`, auth);
  if (started.status !== 200 && !started.body.toString().includes('AF20024')) fail(`start ${contentType}: HTTP ${started.status}`);
  const end = Date.now() - 60_000; // the simulator's newest blob is a minute old (schedule.ts)
  for (let from = end - Number(lookbackText) * 3_600_000; from < end; from += 86_400_000) {
    const to = Math.min(end, from + 86_400_000);
    let url: string | undefined = `${feed}/subscriptions/content?contentType=${contentType}&startTime=${new Date(from).toISOString().slice(0, 19)}&endTime=${new Date(to).toISOString().slice(0, 19)}&${pub}`;
    while (url) {
      const r = await request('GET', url, auth);
      if (r.status !== 200) fail(`list ${contentType}: HTTP ${r.status} ${r.body.toString().slice(0, 200)}`);
      for (const item of JSON.parse(r.body.toString()) as { contentUri: string }[]) queue.push({ contentType, uri: `${item.contentUri}${item.contentUri.includes('?') ? '&' : '?'}${pub}` });
      wake();
      url = r.next ? `${r.next}&${pub}` : undefined;
    }
  }
  listing--;
  wake();
}

async function download(): Promise<void> {
  for (;;) {
    const job = queue[next];
    if (!job) {
      if (listing === 0) return;
      await new Promise<void>((r) => idle.push(r));
      continue;
    }
    queue[next++] = undefined!; // the body fetched is all that is kept of a job
    const r = await request('GET', job.uri, auth);
    if (r.status !== 200) fail(`blob: HTTP ${r.status}`);
    await addBlob(job.contentType, r.body);
  }
}

await Promise.all([...CONTENT_TYPES.map(listAll), ...Array.from({ length: DOWNLOADS }, download)]);
for (const [tag, p] of pending) await sendFrame(tag, Buffer.concat(p.parts, p.bytes), p.count);
while (waiting.size > 0) await nextSlot();
socket.end();
agent.destroy();
process.stdout.write(JSON.stringify({ records, blobs, bytes, frames }) + '\n');
