import net from 'node:net';
import tls from 'node:tls';
import { EventTime } from '@fluent-org/logger';
import * as protocol from '@fluent-org/logger/build/src/protocol.js';

/**
 * A Forward receiver for tests, on a real loopback socket: decodes every mode the way Fluent Bit's
 * in_forward does, acks `chunk` frames (or withholds acks on demand), and records what it got,
 * including each frame's encoded size. Like Fluent Bit it closes the connection, without an ack,
 * on a frame above `bufferMaxSize`.
 */
export interface ReceivedEntry {
  tag: string;
  timeMs: number;
  nanos: number;
  record: Record<string, unknown>;
}

export interface ForwardReceiver {
  port: number;
  entries: ReceivedEntry[];
  frameSizes: number[];
  chunks: string[];
  /** Frames that arrived (acked or not). */
  frames: number;
  /** 'reject': answer `{}` and close, as Vector does when a sink rejects the events. */
  setAck(mode: 'always' | 'never' | 'reject'): void;
  /** Greet new connections with a HELO, as a Fluent Bit input with shared_key does. */
  setHelo(on: boolean): void;
  close(): Promise<void>;
}

export async function startForwardReceiver(
  opts: { ack?: 'always' | 'never' | 'reject'; bufferMaxSize?: number; path?: string; tls?: tls.TlsOptions } = {},
): Promise<ForwardReceiver> {
  let ackMode = opts.ack ?? 'always';
  let helo = false;
  const sockets = new Set<net.Socket>();
  const r: Omit<ForwardReceiver, 'port' | 'close' | 'setAck' | 'setHelo'> = { entries: [], frameSizes: [], chunks: [], frames: 0 };
  const onConnection = async (socket: net.Socket) => {
    sockets.add(socket);
    if (helo) socket.write(protocol.encodeMessage(protocol.generateHelo('nonce123456789ab', 'authsalt', true) as never));
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    try {
      for await (const message of protocol.decodeClientStream(socket)) {
        const size = Buffer.from(protocol.encodeMessage(message as never)).length;
        if (opts.bufferMaxSize && size > opts.bufferMaxSize) {
          socket.destroy();
          return;
        }
        const t = protocol.parseTransport(message as never);
        r.frames++;
        r.frameSizes.push(size);
        for (const [time, record] of t.entries as Array<[unknown, Record<string, unknown>]>) {
          const et = time instanceof EventTime ? time : undefined;
          r.entries.push({
            tag: t.tag,
            timeMs: et ? et.epoch * 1000 + Math.floor(et.nano / 1e6) : Number(time) * 1000,
            nanos: et ? et.nano : 0,
            record,
          });
        }
        if (t.chunk) {
          r.chunks.push(t.chunk);
          if (ackMode === 'reject') {
            socket.end(protocol.encodeMessage({} as never));
            return;
          }
          if (ackMode === 'always') socket.write(protocol.encodeMessage(protocol.generateAck(t.chunk)));
        }
      }
    } catch {
      socket.destroy();
    }
  };
  const server = opts.tls ? tls.createServer(opts.tls, onConnection) : net.createServer(onConnection);
  await new Promise<void>((resolve) => (opts.path ? server.listen(opts.path, resolve) : server.listen(0, '127.0.0.1', resolve)));
  const addr = server.address();
  return Object.assign(r, {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    setAck(mode: 'always' | 'never' | 'reject') {
      ackMode = mode;
    },
    setHelo(on: boolean) {
      helo = on;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
