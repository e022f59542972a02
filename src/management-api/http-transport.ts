/**
 * One HTTPS request of the API client, on node:https directly. node-fetch (still MSAL's network
 * client, src/auth/network-client.ts) cost the record path about a tenth of the collector's CPU
 * on blob downloads: a WHATWG Headers object, a PassThrough piped behind every body, an abort
 * controller and a DOMException per finished pipeline, an async iterator per body (issue 7, CPU
 * profile of 200,000 records). Here a body is read straight into one buffer of its
 * Content-Length, so a 40 MiB blob is held once.
 *
 * Same contract as the fetch call it replaces: redirects are never followed (the caller judges
 * them), `Accept-Encoding: gzip, deflate, br` is sent and the answer decoded, the signal aborts the
 * request and its body, and connection failures reject with the socket's error (its `code` intact
 * for describeNetworkError).
 */
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import zlib from 'node:zlib';

export interface HttpResponse {
  status: number;
  /** Header names in lower case; repeated headers joined with ", ". */
  headers: Map<string, string>;
  /** The whole body, decoded (content-encoding); rejects when it breaks off or is aborted. */
  read(): Promise<Buffer>;
}

export interface HttpRequestOptions {
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  agent: https.Agent;
  signal: AbortSignal;
}

/** Sends the request; resolves once the status line and headers are in (the body is read with `read()`). */
export function httpRequest(url: string, o: HttpRequestOptions): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'Accept-Encoding': 'gzip, deflate, br', ...o.headers };
    if (o.method === 'POST') headers['Content-Length'] = '0';
    let req: ReturnType<typeof https.request>;
    try {
      req = https.request(url, { method: o.method, headers, agent: o.agent, signal: o.signal }, (res) => {
        resolve({ status: res.statusCode ?? 0, headers: headerMap(res), read: () => readBody(res) });
      });
    } catch (err) {
      reject(err); // a URL or header node refuses outright
      return;
    }
    // Before the response: the connection's failure (or the abort). After it, `read()` reports.
    req.on('error', reject);
    req.end();
  });
}

function headerMap(res: IncomingMessage): Map<string, string> {
  const m = new Map<string, string>();
  for (const [k, v] of Object.entries(res.headers)) {
    if (v !== undefined) m.set(k, Array.isArray(v) ? v.join(', ') : v);
  }
  return m;
}

/**
 * The body's bytes. Unencoded with a Content-Length: one buffer of that size, filled as chunks
 * arrive. Otherwise the chunks are gathered and, when encoded, decoded off the event loop.
 */
function readBody(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const encoding = (res.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    const lengthText = res.headers['content-length'];
    const length = lengthText !== undefined && /^\d+$/.test(lengthText) ? Number(lengthText) : undefined;
    const sized = encoding === 'identity' && length !== undefined && Number.isSafeInteger(length);
    const buf = sized ? Buffer.allocUnsafe(length) : undefined;
    const chunks: Buffer[] = [];
    let at = 0;
    let ended = false;
    res.on('data', (chunk: Buffer) => {
      if (buf) {
        if (at + chunk.length > buf.length) {
          res.destroy(new Error(`more bytes than its Content-Length (${buf.length})`));
          return;
        }
        chunk.copy(buf, at);
      } else {
        chunks.push(chunk);
      }
      at += chunk.length;
    });
    res.on('error', reject);
    res.on('end', () => {
      ended = true;
      if (length !== undefined && encoding === 'identity' && at !== length) {
        reject(new Error(`${at} of ${length} bytes`));
        return;
      }
      const raw = buf ?? Buffer.concat(chunks, at);
      if (encoding === 'identity') resolve(raw);
      else decode(raw, encoding).then(resolve, reject);
    });
    // A connection that closes before the end (reset, truncated transfer, abort) without an error event.
    res.on('close', () => {
      if (!ended) reject(new Error(length !== undefined ? `connection closed after ${at} of ${length} bytes` : `connection closed after ${at} bytes`));
    });
  });
}

/** Decodes a gzip, deflate (zlib-wrapped or raw, as servers send both) or br body. */
function decode(raw: Buffer, encoding: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, out: Buffer) => (err ? reject(new Error(`the ${encoding} body does not decode (${err.message})`)) : resolve(out));
    if (encoding === 'gzip' || encoding === 'x-gzip') zlib.gunzip(raw, done);
    else if (encoding === 'deflate') (raw.length > 0 && (raw[0]! & 0x0f) === 0x08 ? zlib.inflate : zlib.inflateRaw)(raw, done);
    else if (encoding === 'br') zlib.brotliDecompress(raw, done);
    else reject(new Error(`an unsupported content encoding '${encoding.slice(0, 40)}'`));
  });
}
