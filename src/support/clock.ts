/** Injectable time source (ms since epoch), so tests can move time for the collector and the simulator together. */
export type Clock = () => number;
export const systemClock: Clock = () => Date.now();
