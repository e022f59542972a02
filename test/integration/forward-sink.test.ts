import assert from 'node:assert/strict';
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateClientCertificate, generateServerTls } from '../../src/simulator/tls.ts';
import { test } from 'node:test';
import { ForwardSink } from '../../src/sink/forward-sink.ts';
import { DEFAULTS } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/support/logger.ts';
import { startForwardReceiver } from '../helpers/forward-receiver.ts';
import type { RoutedRecord } from '../../src/sink/types.ts';

function records(n: number, size = 600): RoutedRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    tag: `cloud.office365.management.${['exchange', 'sharepoint', 'onedrive'][i % 3]}`,
    timeMs: 1_764_000_000_000 + i * 1001,
    record: { Id: `id-${i}`, Workload: 'X', Payload: 'é✓'.repeat(size / 4), Nested: { a: [1, {}, []], n: null } },
  }));
}

test('every record arrives once, acked, in frames no larger than max_frame_bytes', async () => {
  const rx = await startForwardReceiver({ bufferMaxSize: 64 * 1024 });
  const sink = new ForwardSink({ ...DEFAULTS, host: '127.0.0.1', port: rx.port, ackTimeoutMs: 5000, maxFrameBytes: 64 * 1024, maxFramesInFlight: 4 }, silentLogger);
  try {
    const input = records(3000);
    await sink.send(input, new AbortController().signal);
    assert.equal(rx.entries.length, input.length);
    assert.ok(rx.frames > 20, `expected many frames, got ${rx.frames}`);
    for (const s of rx.frameSizes) assert.ok(s <= 64 * 1024, `frame of ${s} bytes`);
    const byId = new Map(rx.entries.map((e) => [e.record.Id, e]));
    assert.equal(byId.size, input.length);
    for (const r of input) {
      const got = byId.get(r.record.Id)!;
      assert.equal(got.tag, r.tag);
      assert.equal(got.timeMs, r.timeMs);
      assert.deepEqual(got.record, r.record);
    }
    assert.equal(sink.stats.recordsAcked, input.length);
  } finally {
    await sink.close();
    await rx.close();
  }
});

test('a receiver that withholds acks keeps send() from resolving; acks later complete it', async () => {
  const rx = await startForwardReceiver({ ack: 'never' });
  const sink = new ForwardSink({ ...DEFAULTS, host: '127.0.0.1', port: rx.port, ackTimeoutMs: 300, maxFrameBytes: 64 * 1024, maxFramesInFlight: 2 }, silentLogger);
  try {
    let done = false;
    const p = sink.send(records(50), new AbortController().signal).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(done, false, 'send resolved without acks');
    assert.ok(sink.stats.framesRetried >= 1, 'frames were re-sent after the ack timeout');
    rx.setAck('always');
    await p;
    assert.equal(done, true);
    const ids = new Set(rx.entries.map((e) => e.record.Id));
    assert.equal(ids.size, 50, 'every record arrived (re-sends may duplicate, never lose)');
  } finally {
    await sink.close();
    await rx.close();
  }
});

test('abort stops a send that cannot complete', async () => {
  const rx = await startForwardReceiver({ ack: 'never' });
  const sink = new ForwardSink({ ...DEFAULTS, host: '127.0.0.1', port: rx.port, ackTimeoutMs: 200, maxFrameBytes: 64 * 1024, maxFramesInFlight: 2 }, silentLogger);
  try {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('stop')), 500);
    await assert.rejects(sink.send(records(10), ac.signal), /stop/);
  } finally {
    await sink.close();
    await rx.close();
  }
});

test('a record larger than a frame is refused with a clear error', async () => {
  const sink = new ForwardSink({ ...DEFAULTS, host: '127.0.0.1', port: 9, ackTimeoutMs: 200, maxFrameBytes: 4096, maxFramesInFlight: 1 }, silentLogger);
  try {
    await assert.rejects(sink.send(records(1, 8000), new AbortController().signal), (e: Error & { code?: string }) => e.code === 'RECORD_TOO_LARGE' && /Id id-0/.test(e.message));
  } finally {
    await sink.close();
  }
});

test('unix socket output', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-sock-'));
  const sockPath = path.join(dir, 'fwd.sock');
  const rx = await startForwardReceiver({ path: sockPath });
  const sink = new ForwardSink({ ...DEFAULTS, host: '127.0.0.1', port: 1, unixSocket: sockPath, ackTimeoutMs: 5000, maxFrameBytes: 64 * 1024, maxFramesInFlight: 2 }, silentLogger);
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
  const base = { ...DEFAULTS, host: '127.0.0.1', port: rx.port, ackTimeoutMs: 1000, maxFrameBytes: 64 * 1024, maxFramesInFlight: 2 };
  const good = new ForwardSink({ ...base, tls: { caFile, verify: true } }, silentLogger);
  const untrusting = new ForwardSink({ ...base, tls: { verify: true } }, silentLogger);
  try {
    await good.send(records(100), new AbortController().signal);
    assert.equal(new Set(rx.entries.map((e) => e.record.Id)).size, 100);
    // Without the CA the connection is refused: nothing is delivered, send() does not resolve.
    const before = rx.entries.length;
    await assert.rejects(untrusting.send(records(5), AbortSignal.timeout(1500)));
    assert.equal(rx.entries.length, before);
  } finally {
    await good.close();
    await untrusting.close();
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a receiver that rejects with {} (Vector's sink reject) and closes: the client is recreated and the frames re-sent", async () => {
  const rx = await startForwardReceiver({ ack: 'reject' });
  const sink = new ForwardSink({ ...DEFAULTS, host: '127.0.0.1', port: rx.port, ackTimeoutMs: 1000, maxFrameBytes: 64 * 1024, maxFramesInFlight: 2 }, silentLogger);
  try {
    const p = sink.send(records(100), new AbortController().signal);
    for (let i = 0; i < 100 && rx.frames === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    rx.setAck('always');
    await p;
    assert.ok(sink.stats.framesRetried >= 1);
    assert.equal(new Set(rx.entries.map((e) => e.record.Id)).size, 100);
  } finally {
    await sink.close();
    await rx.close();
  }
});

test('TLS output presents a client certificate when the receiver requires one', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm365-mtls-'));
  const server = await generateServerTls('127.0.0.1');
  const client = await generateClientCertificate({ commonName: 'm365-forward' });
  // The receiver trusts exactly this (self-signed) client certificate, like tls.verify_client_cert.
  const rx = await startForwardReceiver({ tls: { key: server.keyPem, cert: server.certPem, requestCert: true, rejectUnauthorized: true, ca: client.certPem } });
  for (const [f, v] of [['ca.pem', server.caPem], ['client.crt', client.certPem], ['client.key', client.keyPem]] as const) writeFileSync(path.join(dir, f), v);
  const base = { ...DEFAULTS, host: '127.0.0.1', port: rx.port, ackTimeoutMs: 1000, maxFrameBytes: 64 * 1024, maxFramesInFlight: 2 };
  const withCert = new ForwardSink({ ...base, tls: { caFile: path.join(dir, 'ca.pem'), certFile: path.join(dir, 'client.crt'), keyFile: path.join(dir, 'client.key'), verify: true } }, silentLogger);
  const withoutCert = new ForwardSink({ ...base, tls: { caFile: path.join(dir, 'ca.pem'), verify: true } }, silentLogger);
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

test('rejects while several frames are in flight never wedge the output (regression: replacing the wrong client)', async () => {
  const rx = await startForwardReceiver({ ack: 'reject' });
  const sink = new ForwardSink({ ...DEFAULTS, host: '127.0.0.1', port: rx.port, ackTimeoutMs: 500, maxFrameBytes: 4096, maxFramesInFlight: 8 }, silentLogger);
  try {
    const sends = Array.from({ length: 8 }, (_, i) => sink.send(records(6).map((r) => ({ ...r, record: { ...r.record, Id: `${i}-${r.record.Id}` } })), new AbortController().signal));
    await new Promise((r) => setTimeout(r, 1500));
    rx.setAck('always');
    await Promise.all(sends);
    assert.equal(new Set(rx.entries.map((e) => e.record.Id)).size, 48);
  } finally {
    await sink.close();
    await rx.close();
  }
});

test('a client put in FATAL with nothing in flight (HELO from a shared_key input) is replaced', async () => {
  const rx = await startForwardReceiver();
  rx.setHelo(true);
  const sink = new ForwardSink({ ...DEFAULTS, host: '127.0.0.1', port: rx.port, ackTimeoutMs: 500, maxFrameBytes: 64 * 1024, maxFramesInFlight: 2 }, silentLogger);
  try {
    const p = sink.send(records(10), new AbortController().signal);
    await new Promise((r) => setTimeout(r, 1000));
    rx.setHelo(false); // the input is fixed: shared_key removed
    await p;
    assert.equal(new Set(rx.entries.map((e) => e.record.Id)).size, 10);
  } finally {
    await sink.close();
    await rx.close();
  }
});

test('abort stops every waiting frame, and close() returns even when the receiver stopped reading', async () => {
  const rx = await startForwardReceiver({ ack: 'never' });
  const sink = new ForwardSink({ ...DEFAULTS, host: '127.0.0.1', port: rx.port, ackTimeoutMs: 60_000, maxFrameBytes: 4096, maxFramesInFlight: 1 }, silentLogger);
  const ac = new AbortController();
  setMaxListeners(0, ac.signal); // 20 sends wait on it
  const sends = Array.from({ length: 20 }, () => sink.send(records(3), ac.signal).then(() => 'resolved', () => 'rejected'));
  await new Promise((r) => setTimeout(r, 300));
  ac.abort(new Error('stop'));
  const results = await Promise.race([Promise.all(sends), new Promise((r) => setTimeout(() => r('hung'), 3000))]);
  assert.deepEqual(results, Array(20).fill('rejected'));
  const closed = await Promise.race([sink.close().then(() => 'closed'), new Promise((r) => setTimeout(() => r('hung'), 5000))]);
  assert.equal(closed, 'closed');
  await rx.close();
});
