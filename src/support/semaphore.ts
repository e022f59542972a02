/** Counting semaphore: at most `size` holders at once, FIFO. Used for the per-tenant download pool. */
export class Semaphore {
  #free: number;
  #queue: Array<(err?: unknown) => void> = [];
  constructor(size: number) {
    this.#free = size;
  }
  #cancelled?: unknown;

  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.#cancelled !== undefined) throw this.#cancelled;
    if (this.#free > 0) {
      this.#free--;
    } else {
      await new Promise<void>((resolve, reject) => {
        const grant = (err?: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          if (err !== undefined) reject(err);
          else resolve();
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

  /** Fails every waiter and every later acquire with `reason` (used when the owner closes). */
  cancel(reason: unknown): void {
    this.#cancelled = reason;
    for (const g of this.#queue.splice(0)) g(reason);
  }
}
