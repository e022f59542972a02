/**
 * The API's own limits (reference management-api.md §4), in one place for the collector and the
 * simulator.
 */

/** A listing window is at most 24 h (AF20055; a longer one may silently return partial results). */
export const MAX_WINDOW_MS = 24 * 3600_000;

/**
 * Listing start times may be at most 7 days back (AF20055); content is retrievable about as long
 * (each blob's own `contentExpiration` decides, never this constant).
 */
export const API_RETENTION_MS = 7 * 24 * 3600_000;

/**
 * The collector stays this far inside the retention limit, so a window planned now is still valid
 * when it is sent after queueing and a second of clock error (Beats saw the limit at ~7 d + 1 h,
 * Elastic settled on 167h55m: §9.2).
 */
export const RETENTION_SAFETY_MS = 10 * 60_000;
