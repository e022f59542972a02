/**
 * The bench's fallback receiver, in its own process so its CPU is measured apart from the bench:
 * our acking Forward receiver (test/helpers/forward-receiver.ts) on a loopback port. It prints
 * `{"port":N}` when ready and answers the IPC message 'count' with `{"records":N}` (records
 * received so far). Received entries are counted and dropped every second, so memory stays flat
 * however many records pass (the helper keeps every entry for tests).
 */
import { startForwardReceiver } from '../helpers/forward-receiver.ts';

const rx = await startForwardReceiver();
let records = 0;
const drain = () => {
  records += rx.entries.length;
  rx.entries.length = 0;
  rx.frameSizes.length = 0;
  rx.chunks.length = 0;
};
const timer = setInterval(drain, 1000);
process.on('message', (m) => {
  if (m === 'count') {
    drain();
    process.send?.({ records });
  }
});
const stop = async () => {
  clearInterval(timer);
  await rx.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.stdout.write(JSON.stringify({ port: rx.port }) + '\n');
