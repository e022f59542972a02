/**
 * Content listing window rules (reference §3.4, §4), pure functions of the query and the clock.
 */

const DAY_MS = 24 * 3_600_000;

/**
 * Parse an API time: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM`, `YYYY-MM-DDTHH:MM:SS`, each optionally with
 * a fraction (after seconds) and a trailing `Z`; always UTC (reference §4 "Time formats": the
 * documented forms plus what collectors are observed to send). Offsets such as `+02:00` are not
 * accepted: nothing documents them. Returns ms epoch or null.
 */
export function parseApiTime(text: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?Z?$/.exec(text);
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = ''] = m;
  const ms = Number((frac + '000').slice(0, 3));
  const t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  const back = new Date(t);
  // Reject calendar overflow (2024-02-30, 25:00) instead of letting Date roll it over.
  if (
    back.getUTCFullYear() !== Number(y) ||
    back.getUTCMonth() !== Number(mo) - 1 ||
    back.getUTCDate() !== Number(d) ||
    back.getUTCHours() !== Number(h) ||
    back.getUTCMinutes() !== Number(mi) ||
    back.getUTCSeconds() !== Number(s)
  ) {
    return null;
  }
  return t;
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
  const startMs = parseApiTime(startText);
  if (startMs === null) return badType('startTime', startText);
  const endMs = parseApiTime(endText);
  if (endMs === null) return badType('endTime', endText);
  if (startMs >= endMs) {
    return { ok: false, code: 'AF20055', message: `${AF20055_TEXT} startTime ${startText} is not before endTime ${endText}.` };
  }
  if (endMs - startMs > DAY_MS) {
    return { ok: false, code: 'AF20055', message: `${AF20055_TEXT} The window ${startText} .. ${endText} is longer than 24 hours.` };
  }
  if (startMs < nowMs - 7 * DAY_MS) {
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

/** ISO-8601 with milliseconds and Z, the form the real listing uses for contentCreated. */
export function isoMs(ms: number): string {
  return new Date(ms).toISOString();
}
