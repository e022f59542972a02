/** Waits `ms`, or rejects with the signal's reason as soon as the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A controller that also aborts when `parent` aborts, and a `done()` that detaches it from the
 * parent. Used instead of AbortSignal.any(), whose listeners on a long-lived parent signal pile
 * up over months of polling.
 */
export function childController(parent: AbortSignal): { controller: AbortController; done: () => void } {
  const controller = new AbortController();
  const onAbort = () => controller.abort(parent.reason);
  if (parent.aborted) onAbort();
  else parent.addEventListener('abort', onAbort, { once: true });
  return { controller, done: () => parent.removeEventListener('abort', onAbort) };
}

/** A signal that aborts when `parent` aborts or after `timeoutMs` (one HTTP request). */
export function timeoutSignal(parent: AbortSignal, timeoutMs: number, what: string): { signal: AbortSignal; done: () => void } {
  const { controller, done } = childController(parent);
  const timer = setTimeout(() => controller.abort(new Error(`${what}: no response within ${timeoutMs} ms`)), timeoutMs);
  return {
    signal: controller.signal,
    done: () => {
      clearTimeout(timer);
      done();
    },
  };
}
