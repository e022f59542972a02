/**
 * The API client's HTTPS transport (src/management-api/http-transport.ts) over a real TLS socket:
 * bodies decoded as servers send them, and a body that breaks off or overruns is an error, never
 * a short buffer taken for a whole blob.
 */
import assert from 'node:assert/strict';
import { createServer, Agent, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import zlib from 'node:zlib';
import { httpRequest } from '../../src/management-api/http-transport.ts';
import { generateServerTls } from '../../src/simulator/tls.ts';

const body = Buffer.from(JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ Id: `id-${i}`, n: 1156492.0, s: 'é✓' }))));
let server: Server;
let base: string;
let agent: Agent;
const seen: Record<string, string | undefined>[] = [];

before(async () => {
  const tls = await generateServerTls('127.0.0.1');
  server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    seen.push({ url: req.url, method: req.method, acceptEncoding: req.headers['accept-encoding'], contentLength: req.headers['content-length'], auth: req.headers.authorization });
    const path = req.url ?? '';
    if (path === '/gzip') res.writeHead(200, { 'Content-Encoding': 'gzip' }).end(zlib.gzipSync(body));
    else if (path === '/deflate') res.writeHead(200, { 'Content-Encoding': 'deflate' }).end(zlib.deflateSync(body));
    else if (path === '/deflate-raw') res.writeHead(200, { 'Content-Encoding': 'deflate' }).end(zlib.deflateRawSync(body));
    else if (path === '/br') res.writeHead(200, { 'Content-Encoding': 'br' }).end(zlib.brotliCompressSync(body));
    else if (path === '/bad-gzip') res.writeHead(200, { 'Content-Encoding': 'gzip' }).end(body);
    else if (path === '/chunked') {
      res.writeHead(200);
      res.write(body.subarray(0, 100));
      res.end(body.subarray(100));
    } else if (path === '/truncated') {
      res.writeHead(200, { 'Content-Length': String(body.length) });
      res.write(body.subarray(0, 1000), () => res.socket?.destroy());
    } else if (path === '/redirect') res.writeHead(302, { Location: '/elsewhere', 'Set-Cookie': ['a=1', 'b=2'] }).end('moved');
    else res.writeHead(200, { 'Content-Length': String(body.length), Date: 'Tue, 01 Dec 2026 10:00:00 GMT' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  agent = new Agent({ keepAlive: true, ca: tls.caPem });
});
after(async () => {
  agent.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const get = (p: string, signal = AbortSignal.timeout(10_000)) => httpRequest(`${base}${p}`, { method: 'GET', headers: { Authorization: 'Bearer t' }, agent, signal });

test('a body with a Content-Length arrives whole, with its headers', async () => {
  const res = await get('/plain');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('date'), 'Tue, 01 Dec 2026 10:00:00 GMT');
  assert.deepEqual(await res.read(), body);
  assert.equal(seen.at(-1)!.acceptEncoding, 'gzip, deflate, br');
  assert.equal(seen.at(-1)!.auth, 'Bearer t');
});

for (const p of ['/gzip', '/deflate', '/deflate-raw', '/br', '/chunked']) {
  test(`a ${p.slice(1)} body is decoded to the same bytes`, async () => {
    const res = await get(p);
    assert.deepEqual(await res.read(), body);
  });
}

test('a POST sends Content-Length: 0', async () => {
  const res = await httpRequest(`${base}/plain`, { method: 'POST', headers: {}, agent, signal: AbortSignal.timeout(10_000) });
  await res.read();
  assert.equal(seen.at(-1)!.method, 'POST');
  assert.equal(seen.at(-1)!.contentLength, '0');
});

test('a redirect is answered as it is, not followed; repeated headers are joined', async () => {
  const res = await get('/redirect');
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), '/elsewhere');
  assert.equal(res.headers.get('set-cookie'), 'a=1, b=2');
  await res.read();
  assert.notEqual(seen.at(-1)!.url, '/elsewhere');
});

test('a body cut short is an error, not a short buffer', async () => {
  const res = await get('/truncated');
  await assert.rejects(res.read(), /1000 of \d+ bytes|aborted|ECONNRESET/);
});

test('a body that does not decode is an error naming the encoding', async () => {
  const res = await get('/bad-gzip');
  await assert.rejects(res.read(), /the gzip body does not decode/);
});

test('a refused connection rejects with its errno code', async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  await assert.rejects(httpRequest(`https://127.0.0.1:${port}/`, { method: 'GET', headers: {}, agent, signal: AbortSignal.timeout(10_000) }), { code: 'ECONNREFUSED' });
});

test('an abort stops the request', async () => {
  const ac = new AbortController();
  ac.abort(new Error('stop'));
  await assert.rejects(get('/plain', ac.signal));
});
