/**
 * Simulators the `simulate` command cannot stage, each in this one process (its CPU measured as one):
 *
 *   node --import tsx test/bench/sim-host.ts DIR tenants N RECORDS   (scenario 5)
 *   node --import tsx test/bench/sim-host.ts DIR big-blob MIB         (scenario 4, one large blob)
 *
 * `tenants`: N simulators (seeds 1001..1000+N, so each tenant has its own ids, records and
 * credentials), each on its own port with its own CA; the CAs go into DIR/ca.pem together, the one
 * api.ca_file the collector config can name. `big-blob`: one simulator serving a single
 * Audit.General blob of at least MIB MiB made of the synthetic tenant's records (about 1.4 KB
 * each), listed half an hour ago: `simulate --corpus` cannot make one, as it cuts a corpus into
 * blobs of 1-80 records like the synthetic tenant.
 *
 * Prints one JSON line when ready: `{caFile, records, blobs, blobBytes?, tenants: [{apiUrl,
 * loginUrl, tenantId, clientId, clientSecret}]}`; on SIGTERM/SIGINT it closes every simulator and
 * prints `{"stats": {...}}` (their SimStats summed).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startSimulator, type AuditRecord, type Simulator } from '../../src/simulator/index.ts';
import { generateSynthetic } from '../../src/simulator/synthetic.ts';

const [dir, mode, ...rest] = process.argv.slice(2);
const sims: Simulator[] = [];
let blobBytes: number | undefined;

if (mode === 'tenants') {
  const [n, records] = rest.map(Number);
  for (let i = 1; i <= n!; i++) sims.push(await startSimulator({ seed: 1000 + i, records: records! }));
} else if (mode === 'big-blob') {
  const target = Number(rest[0]) * 2 ** 20;
  const sim = await startSimulator({ seed: 4040, records: 0 });
  const anchor = sim.now();
  // ~1.4 KB a record on average: generate a fifth more than needed, then take just enough.
  const planned = generateSynthetic({ seed: 4040, records: Math.ceil((target / 1300) * 1.2), tenantId: sim.tenantId, anchor, spanHours: 2, lateFraction: 0, lateMinutes: [2, 30] });
  const picked: AuditRecord[] = [];
  let bytes = 2;
  outer: for (const p of planned) {
    for (const r of JSON.parse(p.body.bytes.toString('utf8')) as AuditRecord[]) {
      picked.push(r);
      bytes += Buffer.byteLength(JSON.stringify(r)) + 1;
      if (bytes >= target) break outer;
    }
  }
  if (bytes < target) throw new Error(`big-blob: generated only ${bytes} bytes of records`);
  planned.length = 0;
  sim.addRecords(picked, { contentType: 'Audit.General', contentCreated: anchor - 30 * 60_000 });
  blobBytes = bytes;
  sims.push(sim);
} else {
  process.stderr.write('usage: sim-host.ts DIR tenants N RECORDS | DIR big-blob MIB\n');
  process.exit(2);
}

const caFile = path.join(dir!, 'ca.pem');
writeFileSync(caFile, sims.map((s) => s.caPem).join('\n'));
const blobs = sims.flatMap((s) => s.blobs());
process.stdout.write(
  JSON.stringify({
    caFile,
    records: blobs.reduce((n, b) => n + b.recordCount, 0),
    blobs: blobs.length,
    ...(blobBytes !== undefined ? { blobBytes } : {}),
    tenants: sims.map((s) => ({ apiUrl: s.apiUrl, loginUrl: s.loginUrl, tenantId: s.tenantId, clientId: s.clientId, clientSecret: s.clientSecret })),
  }) + '\n',
);

await new Promise<void>((resolve) => {
  process.once('SIGTERM', resolve);
  process.once('SIGINT', resolve);
});
const total: Record<string, number> = {};
for (const s of sims) {
  const st = s.stats();
  for (const k of ['requests', 'throttled', 'faultsServed', 'tokensIssued'] as const) total[k] = (total[k] ?? 0) + st[k];
}
await Promise.all(sims.map((s) => s.close()));
process.stdout.write(JSON.stringify({ stats: total }) + '\n');
