/** Counting semaphore: at most `size` holders at once, FIFO. Used for the per-tenant download pool. */
export class Semaphore {
  #free: number;
  #queue: Array<() => void> = [];
  constructor(size: number) {
    this.#free = size;
  }
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.#free > 0) {
      this.#free--;
    } else {
      await new Promise<void>((resolve, reject) => {
        const grant = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          this.#queue = this.#queue.filter((g) => g !== grant);
          reject(signal!.reason);
        };
        this.#queue.push(grant);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#queue.shift();
      if (next) next();
      else this.#free++;
    };
  }
}
