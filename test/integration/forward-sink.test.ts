import assert from 'node:assert/strict';
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as protocol from '@fluent-org/logger/build/src/protocol.js';
import { generateClientCertificate, generateServerTls } from '../../src/simulator/tls.ts';
import { ForwardSink } from '../../src/sink/forward-sink.ts';
import { DEFAULTS } from '../../src/config/schema.ts';
import { encodeBlob, type EncodedEntry } from '../../src/record/encode.ts';
import { createRouter } from '../../src/sink/route.ts';
import { createLogger, silentLogger } from '../../src/support/logger.ts';
import { startForwardReceiver } from '../helpers/forward-receiver.ts';

const router = createRouter('cloud.office365.management.{table}', {});

/** Audit-record-like entries, encoded the way the collector does (record format, Forward wire). */
function records(n: number, size = 600, prefix = 'id'): EncodedEntry[] {
  const recs = Array.from({ length: n }, (_, i) => ({
    Id: `${prefix}-${i}`,
    CreationTime: new Date(1_764_000_000_000 + i * 1001).toISOString().slice(0, 23),
    Workload: ['Exchange', 'SharePoint', 'OneDrive'][i % 3],
    Payload: 'é✓'.repeat(size / 4),
    Nested: { a: [1, {}, []], n: null },
  }));
  return encodeBlob(Buffer.from(JSON.stringify(recs)), { format: { wire: 'forward', record: 'record' }, router, contentType: 'Audit.General', fallback: { sec: 0, nsec: 0 } }).entries;
}

type ForwardConfig = ConstructorParameters<typeof ForwardSink>[0];
const cfg = (over: Partial<ForwardConfig>): ForwardConfig => ({
  host: '127.0.0.1',
  port: 9,
  ackTimeoutMs: 5000,
  maxFrameBytes: 64 * 1024,
  maxRecordBytes: DEFAULTS.maxRecordBytes,
  maxFramesInFlight: 4,
  ...over,
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('every record arrives once, acked, tagged and timed, in frames no larger than max_frame_bytes', async () => {
  const rx = await startForwardReceiver({ bufferMaxSize: 64 * 1024 });
  const sink = new ForwardSink(cfg({ port: rx.port }), silentLogger);
  try {
    const input = records(3000);
    await sink.send(input, new AbortController().signal);
    assert.equal(rx.entries.length, input.length);
    assert.ok(rx.frames > 20, `expected many frames, got ${rx.frames}`);
    for (const s of rx.frameSizes) assert.ok(s <= 64 * 1024, `frame of ${s} bytes`);
    const byId = new Map(rx.entries.map((e) => [e.record.Id, e]));
    assert.equal(byId.size, input.length);
    const got = byId.get('id-8')!;
    assert.equal(got.tag, 'cloud.office365.management.onedrive');
    assert.equal(got.timeMs, 1_764_000_000_000 + 8 * 1001);
    assert.deepEqual(got.record.Nested, { a: [1, {}, []], n: null });
    assert.equal(sink.stats.recordsAcked, input.length);
    assert.equal(sink.health().waiting, false);
  } finally {
    await sink.close();
    await rx.close();
  }
});

test('a record larger than max_frame_bytes travels alone in its own frame', async () => {
  const rx = await startForwardReceiver({ bufferMaxSize: 1024 * 1024 });
  const sink = new ForwardSink(cfg({ port: rx.port, maxFrameBytes: 16 * 1024 }), silentLogger);
  try {
    await sink.send([...records(5, 400, 'small'), ...records(1, 200_000, 'huge'), ...records(5, 400, 'tail')], new AbortController().signal);
    assert.equal(new Set(rx.entries.map((e) => e.record.Id)).size, 11);
    assert.ok(rx.frameSizes.some((s) => s > 200_000));
  } finally {
    await sink.close();
    await rx.close();
  }
});

test('a receiver that withholds acks keeps send() from resolving; acks later complete it', async () => {
  const rx = await startForwardReceiver({ ack: 'never' });
  const sink = new ForwardSink(cfg({ port: rx.port, ackTimeoutMs: 300, maxFramesInFlight: 2 }), silentLogger);
  try {
    let done = false;
    const p = sink.send(records(50), new AbortController().signal).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(done, false, 'send resolved without acks');
    assert.ok(sink.stats.framesResent + sink.stats.reconnects >= 1, 'frames were re-sent after the ack timeout');
    assert.ok(sink.health().waiting && sink.health().stalledMs > 900);
    rx.setAck('always');
    await p;
    const ids = new Set(rx.entries.map((e) => e.record.Id));
    assert.equal(ids.size, 50, 'every record arrived (re-sends may duplicate, never lose)');
  } finally {
    await sink.close();
    await rx.close();
  }
});

/**
 * A receiver that acks every frame `lateMs` after it arrived (Fluent Bit with a slow filesystem
 * buffer): the regression of finding 5, where the client was replaced on each late ack and every
 * frame in flight re-sent.
 */
async function slowReceiver(lateMs: number) {
  const entries: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer(async (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    try {
      for await (const m of protocol.decodeClientStream(socket)) {
        const t = protocol.parseTransport(m as never);
        for (const [, rec] of t.entries) entries.push((rec as { Id: string }).Id);
        if (t.chunk) setTimeout(() => socket.writable && socket.write(protocol.encodeMessage(protocol.generateAck(t.chunk!))), lateMs);
      }
    } catch {
      socket.destroy();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    entries,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('acks later than ack_timeout: no storm, the timeout grows and fewer frames fly; at most 2x the records arrive', async () => {
  const rx = await slowReceiver(450);
  const sink = new ForwardSink(cfg({ port: rx.port, ackTimeoutMs: 300, maxFramesInFlight: 8, maxFrameBytes: 8 * 1024 }), silentLogger);
  try {
    const sends = Array.from({ length: 10 }, (_, i) => sink.send(records(100, 200, `b${i}`), new AbortController().signal));
    await Promise.all(sends);
    const unique = new Set(rx.entries);
    assert.equal(unique.size, 1000, 'every record arrived');
    assert.ok(rx.entries.length <= 2000, `the receiver got ${rx.entries.length} records for 1000`);
    assert.ok(sink.stats.lateAcks >= 1, 'late acks were recognised');
    assert.ok(sink.flow.ackTimeoutMs >= 675, `the effective ack timeout grew: ${sink.flow.ackTimeoutMs}`);
    assert.equal(sink.stats.reconnects, 0, 'a slow receiver is not a dead one: the connection is kept');
  } finally {
    await sink.close();
    await rx.close();
  }
});

test('abort stops every waiting frame at once, and close() returns even when the receiver stopped reading', async () => {
  const rx = await startForwardReceiver({ ack: 'never' });
  const sink = new ForwardSink(cfg({ port: rx.port, ackTimeoutMs: 60_000, maxFrameBytes: 4096, maxFramesInFlight: 1 }), silentLogger);
  const ac = new AbortController();
  setMaxListeners(20, ac.signal); // the test's 20 sends share one signal on purpose
  const sends = Array.from({ length: 20 }, () => sink.send(records(3), ac.signal).then(() => 'resolved', () => 'rejected'));
  await new Promise((r) => setTimeout(r, 300));
  ac.abort(new Error('stop'));
  const results = await Promise.race([Promise.all(sends), new Promise((r) => setTimeout(() => r('hung'), 1000))]);
  assert.deepEqual(results, Array(20).fill('rejected'));
  const closed = await Promise.race([sink.close().then(() => 'closed'), new Promise((r) => setTimeout(() => r('hung'), 3000))]);
  assert.equal(closed, 'closed');
  await rx.close();
});

test('a receiver that is down: send waits, health names the refusal, abort ends it at once', async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const sink = new ForwardSink(cfg({ port }), silentLogger);
  const ac = new AbortController();
  try {
    const p = sink.send(records(5), ac.signal);
    await until(() => /ECONNREFUSED/.test(sink.health().lastError ?? ''));
    assert.ok(sink.health().waiting);
    const t0 = Date.now();
    ac.abort(new Error('deadline'));
    await assert.rejects(p, /deadline/);
    assert.ok(Date.now() - t0 < 200);
  } finally {
    await sink.close();
  }
});

test('a TLS file that went missing never wedges the output: the error is named, abort ends the send (finding 4)', async () => {
  const sink = new ForwardSink(cfg({ port: 1, tls: { caFile: '/nonexistent/m365-forward-ca.pem', verify: true } }), silentLogger);
  const ac = new AbortController();
  try {
    const p = sink.send(records(2), ac.signal);
    await until(() => /cannot read output\.forward\.tls\.ca_file \/nonexistent\/m365-forward-ca\.pem: ENOENT/.test(sink.health().lastError ?? ''));
    ac.abort(new Error('stop'));
    await assert.rejects(p, /stop/);
  } finally {
    await sink.close();
  }
});

test('unix socket output', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-sock-'));
  const sockPath = path.join(dir, 'fwd.sock');
  const rx = await startForwardReceiver({ path: sockPath });
  const sink = new ForwardSink(cfg({ port: 1, unixSocket: sockPath }), silentLogger);
  try {
    await sink.send(records(200), new AbortController().signal);
    assert.equal(new Set(rx.entries.map((e) => e.record.Id)).size, 200);
  } finally {
    await sink.close();
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TLS output verifies the receiver against the given CA', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-tls-'));
  const server = await generateServerTls('127.0.0.1');
  const rx = await startForwardReceiver({ tls: { key: server.keyPem, cert: server.certPem } });
  const caFile = path.join(dir, 'ca.pem');
  writeFileSync(caFile, server.caPem);
  const good = new ForwardSink(cfg({ port: rx.port, tls: { caFile, verify: true } }), silentLogger);
  const untrusting = new ForwardSink(cfg({ port: rx.port, tls: { verify: true } }), silentLogger);
  try {
    await good.send(records(100), new AbortController().signal);
    assert.equal(new Set(rx.entries.map((e) => e.record.Id)).size, 100);
    // Without the CA the connection is refused: nothing is delivered, send() does not resolve.
    const before = rx.entries.length;
    await assert.rejects(untrusting.send(records(5), AbortSignal.timeout(1500)));
    assert.equal(rx.entries.length, before);
    assert.match(untrusting.health().lastError ?? '', /certificate|self.signed|UNABLE/i);
  } finally {
    await good.close();
    await untrusting.close();
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TLS output presents a client certificate when the receiver requires one', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-mtls-'));
  const server = await generateServerTls('127.0.0.1');
  const client = await generateClientCertificate({ commonName: 'm365-forward' });
  // The receiver trusts exactly this (self-signed) client certificate, like tls.verify_client_cert.
  const rx = await startForwardReceiver({ tls: { key: server.keyPem, cert: server.certPem, requestCert: true, rejectUnauthorized: true, ca: client.certPem } });
  for (const [f, v] of [['ca.pem', server.caPem], ['client.crt', client.certPem], ['client.key', client.keyPem]] as const) writeFileSync(path.join(dir, f), v);
  const withCert = new ForwardSink(cfg({ port: rx.port, tls: { caFile: path.join(dir, 'ca.pem'), certFile: path.join(dir, 'client.crt'), keyFile: path.join(dir, 'client.key'), verify: true } }), silentLogger);
  const withoutCert = new ForwardSink(cfg({ port: rx.port, tls: { caFile: path.join(dir, 'ca.pem'), verify: true } }), silentLogger);
  try {
    await withCert.send(records(50), new AbortController().signal);
    assert.equal(new Set(rx.entries.map((e) => e.record.Id)).size, 50);
    const before = rx.entries.length;
    await assert.rejects(withoutCert.send(records(5), AbortSignal.timeout(1500)));
    assert.equal(rx.entries.length, before, 'nothing accepted without the client certificate');
  } finally {
    await withCert.close();
    await withoutCert.close();
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a receiver that rejects with {} (Vector's sink reject) and closes: the frames are re-sent on a new connection", async () => {
  const rx = await startForwardReceiver({ ack: 'reject' });
  const sink = new ForwardSink(cfg({ port: rx.port, ackTimeoutMs: 1000, maxFrameBytes: 4096, maxFramesInFlight: 8 }), silentLogger);
  try {
    const sends = Array.from({ length: 8 }, (_, i) => sink.send(records(6, 600, `r${i}`), new AbortController().signal));
    await until(() => rx.frames > 0);
    await until(() => /rejected the frame/.test(sink.health().lastError ?? ''));
    rx.setAck('always');
    await Promise.all(sends);
    assert.ok(sink.stats.reconnects >= 1);
    assert.equal(new Set(rx.entries.map((e) => e.record.Id)).size, 48);
  } finally {
    await sink.close();
    await rx.close();
  }
});

test('a shared_key input (HELO) is a clear error; once the input is fixed, the records go through', async () => {
  const rx = await startForwardReceiver();
  rx.setHelo(true);
  const sink = new ForwardSink(cfg({ port: rx.port, ackTimeoutMs: 500 }), silentLogger);
  try {
    const p = sink.send(records(10), new AbortController().signal);
    await until(() => /shared_key/.test(sink.health().lastError ?? ''));
    rx.setHelo(false); // the input is fixed: shared_key removed
    await p;
    assert.equal(new Set(rx.entries.map((e) => e.record.Id)).size, 10);
  } finally {
    await sink.close();
    await rx.close();
  }
});

/** A logger that keeps its lines, to see what an operator would read. */
function capture() {
  const lines: Array<{ level: string; msg: string; error?: string }> = [];
  const log = createLogger({ level: 'debug', write: (l) => lines.push(JSON.parse(l)) });
  return { log, lines, warns: () => lines.filter((l) => l.level === 'warn') };
}

test('an output that refuses our data (a shared_key input) is retried with a growing backoff, and said once, not flooded (review finding 5)', async () => {
  const rx = await startForwardReceiver();
  rx.setHelo(true);
  const c = capture();
  const sink = new ForwardSink(cfg({ port: rx.port }), c.log);
  const ac = new AbortController();
  try {
    const p = sink.send(records(5), ac.signal).catch(() => {});
    await new Promise((r) => setTimeout(r, 4000));
    // Backoff 0.5 s, 1 s, 2 s (jittered 50-100%): a handful of attempts in 4 s, not one every 0.5 s.
    assert.ok(sink.stats.reconnects <= 5, `${sink.stats.reconnects} reconnects in 4 s`);
    const notDelivering = c.warns().filter((l) => l.msg === 'forward output not delivering; retrying');
    assert.equal(notDelivering.length, 1, JSON.stringify(c.warns()));
    assert.match(notDelivering[0]!.error!, /shared_key/);
    ac.abort(new Error('stop'));
    await p;
  } finally {
    await sink.close();
    await rx.close();
  }
});

test('a service whose receiver is down says so in its log, with the reason (review finding 4)', async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const c = capture();
  const sink = new ForwardSink(cfg({ port }), c.log);
  const ac = new AbortController();
  try {
    const p = sink.send(records(2), ac.signal).catch(() => {});
    await until(() => c.warns().some((l) => l.msg === 'forward output not delivering; retrying'));
    assert.match(c.warns()[0]!.error!, /connection refused \(ECONNREFUSED\)/);
    ac.abort(new Error('stop'));
    await p;
  } finally {
    await sink.close();
  }
});

test('acks for chunks never sent do not keep a dead connection alive (review finding 11)', async () => {
  const conns = new Set<net.Socket>();
  const server = net.createServer(async (socket) => {
    conns.add(socket);
    socket.on('error', () => {});
    try {
      for await (const m of protocol.decodeClientStream(socket)) {
        if (protocol.parseTransport(m as never).chunk) socket.write(protocol.encodeMessage(protocol.generateAck('not-a-chunk-we-sent')));
      }
    } catch {
      socket.destroy();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sink = new ForwardSink(cfg({ port: (server.address() as net.AddressInfo).port, ackTimeoutMs: 300 }), silentLogger);
  const ac = new AbortController();
  try {
    const p = sink.send(records(2), ac.signal).catch(() => {});
    await until(() => sink.stats.reconnects >= 1);
    await until(() => /does not acknowledge it/.test(sink.health().lastError ?? ''));
    ac.abort(new Error('stop'));
    await p;
  } finally {
    await sink.close();
    for (const s of conns) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('a TLS output whose handshake never completes gives up on that connection and says why (review finding 4)', async () => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const sink = new ForwardSink(cfg({ port: (silent.address() as net.AddressInfo).port, tls: { verify: false } }), silentLogger);
  const ac = new AbortController();
  try {
    const p = sink.send(records(2), ac.signal).catch(() => {});
    await until(() => /TCP or TLS handshake not completed/.test(sink.health().lastError ?? ''), 15_000);
    ac.abort(new Error('stop'));
    await p;
  } finally {
    await sink.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});
