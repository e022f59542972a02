/**
 * A blob whose records go out in several batches (several tags, or more than a frame) listens to
 * the poll's abort signal once, not once per batch: the listener bound set on that signal
 * (feed-poller.ts, listenerBound) counts blobs, and Node's MaxListenersExceededWarning is the
 * alarm for a real listener leak in a process that runs for months. Before the fix, 16 blob
 * slots of multi-tag blobs passed the bound and Node warned on a plain `run --once`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startSimulator } from '../../src/simulator/index.ts';
import { runOnce, simConfig } from '../helpers/collector-harness.ts';
import { startForwardReceiver } from '../helpers/forward-receiver.ts';

test('multi-batch blobs keep the abort listeners within their bound (no MaxListenersExceededWarning)', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => {
    if (w.name === 'MaxListenersExceededWarning') warnings.push(w.message);
  };
  process.on('warning', onWarning);
  const sim = await startSimulator({ seed: 77, records: 4000 });
  const rx = await startForwardReceiver();
  // One download at once: a bound of 22 listeners, while 16 blob slots of blobs spread over
  // several tags each, with frames of 4 KiB (a few records), send far more batches than that.
  const { config, cleanup } = simConfig(sim, {
    port: rx.port,
    spanHours: 20,
    patch: (t) => {
      t.polling.concurrency = 1;
      t.output.forward.max_frame_bytes = 4096;
    },
  });
  try {
    const r = await runOnce(config);
    assert.equal(r.records, 4000);
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    assert.deepEqual(warnings, []);
  } finally {
    process.off('warning', onWarning);
    cleanup();
    await rx.close();
    await sim.close();
  }
});
