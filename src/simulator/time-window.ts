/**
 * Content listing window rules (reference §3.4, §4), pure functions of the query and the clock.
 */
import { parseApiTime } from '../management-api/dates.ts';
import { API_RETENTION_MS, MAX_WINDOW_MS } from '../management-api/limits.ts';

const DAY_MS = 24 * 3_600_000;

/**
 * Parse a listing time the way the API does: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM`,
 * `YYYY-MM-DDTHH:MM:SS`, each optionally with a fraction (after seconds) and a trailing `Z`; always
 * UTC (reference §4 "Time formats"). Offsets are not accepted: nothing documents them. One parser
 * for both sides (management-api/dates.ts), in its strict mode. Returns ms epoch or null.
 */
export function parseListTime(text: string): number | null {
  return parseApiTime(text, { strict: true }) ?? null;
}

export const AF20055_TEXT =
  'Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart, with the start time prior to end time and start time no more than 7 days in the past.';

export type WindowResult =
  | { ok: true; startMs: number; endMs: number; explicit: boolean }
  | { ok: false; code: 'AF20055' | 'AF20002'; message: string };

/**
 * Validate the startTime/endTime pair against `nowMs`. Omitted window = the last 24 h (reference
 * §4 "Window omitted"; the real service is inconsistent here, the simulator picks the documented
 * reference behaviour). An end in the future is accepted, as observed by Beats (§4).
 */
export function resolveWindow(startText: string | undefined, endText: string | undefined, nowMs: number): WindowResult {
  if (startText === undefined && endText === undefined) {
    return { ok: true, startMs: nowMs - DAY_MS, endMs: nowMs, explicit: false };
  }
  if (startText === undefined || endText === undefined) {
    return { ok: false, code: 'AF20055', message: `${AF20055_TEXT} Only ${startText === undefined ? 'endTime' : 'startTime'} was given.` };
  }
  const startMs = parseListTime(startText);
  if (startMs === null) return badType('startTime', startText);
  const endMs = parseListTime(endText);
  if (endMs === null) return badType('endTime', endText);
  if (startMs >= endMs) {
    return { ok: false, code: 'AF20055', message: `${AF20055_TEXT} startTime ${startText} is not before endTime ${endText}.` };
  }
  if (endMs - startMs > MAX_WINDOW_MS) {
    return { ok: false, code: 'AF20055', message: `${AF20055_TEXT} The window ${startText} .. ${endText} is longer than 24 hours.` };
  }
  if (startMs < nowMs - API_RETENTION_MS) {
    return {
      ok: false,
      code: 'AF20055',
      message: `${AF20055_TEXT} startTime ${startText} is more than 7 days before the current time ${new Date(nowMs).toISOString()}.`,
    };
  }
  return { ok: true, startMs, endMs, explicit: true };
}

function badType(name: string, value: string): WindowResult {
  return {
    ok: false,
    code: 'AF20002',
    message: `Invalid parameter type: ${name}='${value}'. Expected type: datetime (YYYY-MM-DD, YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS, UTC).`,
  };
}

