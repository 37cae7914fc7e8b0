/**
 * `new Date(ms).toISOString()` for the hot write path (issue 17): a heartbeat wrote six ISO
 * times (its event's time, the event's lastHeartbeat and expiresAt, and the answer's
 * registeredAt, lastHeartbeat and expiresAt), each a Date object and ~0.5 µs on a loaded
 * machine. Here the `YYYY-MM-DDTHH:MM:` of a minute is kept, so a time is that prefix plus
 * `SS.mmmZ`, and the last few answers are remembered (a heartbeat asks for the same instant
 * three times). Exactly `toISOString()`'s text; times outside years 1970–9999 are left to it.
 *
 * A heartbeat's times fall in three minutes (now, its registration's, now + TTL), so a few
 * minute prefixes are kept, not one: with one, each heartbeat wrote the prefix again three or
 * four times (a Date and a toISOString each, more than the times it saved; issue 17's profile).
 */
const MINUTE_MS = 60_000;
/** 10000-01-01T00:00:00Z: from there toISOString writes a signed six-digit year. */
const YEAR_10000_MS = 253_402_300_800_000;

/** The minute prefixes kept, by the minute's start; replaced round-robin. */
const MINUTES = 8;
const minuteStarts = new Float64Array(MINUTES).fill(Number.NaN);
const minutePrefixes: string[] = new Array<string>(MINUTES).fill('');
let nextMinute = 0;
const RECENT = 4;
const recentMs = new Float64Array(RECENT).fill(Number.NaN);
const recentText: string[] = new Array<string>(RECENT).fill('');
let next = 0;

export function isoTime(ms: number): string {
  for (let i = 0; i < RECENT; i++) if (recentMs[i] === ms) return recentText[i] as string;
  const text = format(ms);
  recentMs[next] = ms;
  recentText[next] = text;
  next = (next + 1) % RECENT;
  return text;
}

function format(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms >= YEAR_10000_MS) return new Date(ms).toISOString();
  const inMinute = ms % MINUTE_MS;
  const minutePrefix = prefixOf(ms - inMinute);
  const seconds = Math.floor(inMinute / 1000);
  const millis = inMinute % 1000;
  return `${minutePrefix}${seconds < 10 ? '0' : ''}${seconds}.${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

/** `YYYY-MM-DDTHH:MM:` of the minute starting at `start`. */
function prefixOf(start: number): string {
  for (let i = 0; i < MINUTES; i++)
    if (minuteStarts[i] === start) return minutePrefixes[i] as string;
  const prefix = new Date(start).toISOString().slice(0, 17);
  minuteStarts[nextMinute] = start;
  minutePrefixes[nextMinute] = prefix;
  nextMinute = (nextMinute + 1) % MINUTES;
  return prefix;
}
