/**
 * What an event-stream subscriber may send the server: nothing it reads. The stream is one-way;
 * a client's messages are discarded, and what it can make the server read is bounded:
 *
 * - one message at most the server's `maxPayload` (4 KiB): past it ws closes with 1009;
 * - frames ws refuses (invalid UTF-8 in a text or close frame: 1007; a bad opcode, an unmasked
 *   frame, reserved bits: 1002; too many fragments or buffered chunks: 1008);
 * - frames it accepts (messages, pings, pongs): at most `frames` per `windowMs`; past it the
 *   stream is closed with 1008, nothing more is read from it, and its socket is cut a second later.
 *   Browsers cannot send WebSocket pings and often keep a connection alive with a text message
 *   every few seconds: the budget leaves room for that, not for a flood.
 *
 * Each refusal is a log line naming the subscriber and a `maxine_event_stream_refused_input_total`
 * count by reason. Other subscribers never notice: each stream reads on its own socket.
 */
import { Counter } from 'prom-client';
import type { Registry as PromRegistry } from 'prom-client';
import type { WebSocket } from 'ws';
import type { Logger } from '../../common/logger.js';

export const INPUT_CLOSE = { POLICY: 1008 } as const;

export interface FrameBudget {
  /** Frames (messages, pings, pongs) a subscriber may send per window. */
  frames: number;
  windowMs: number;
}

/** A flooding subscriber closed with 1008 is cut this long after (it is not read meanwhile). */
const CLOSE_GRACE_MS = 1000;

/**
 * Below ws's `maxPendingAutoPongs` (60): a burst of pings read at once is refused here with
 * 1008 and a log line before ws would cut the socket without a close code.
 */
export const DEFAULT_FRAME_BUDGET: FrameBudget = { frames: 50, windowMs: 10_000 };

export type InputRefusal = 'too_large' | 'invalid_utf8' | 'protocol_error' | 'flood';

/** What a ws receiver error means for the subscriber: the reason, and the code ws closed with. */
export function refusalOf(wsErrorCode: string | undefined): { reason: InputRefusal; code: number } {
  switch (wsErrorCode) {
    case 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH':
    case 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH':
      return { reason: 'too_large', code: 1009 };
    case 'WS_ERR_INVALID_UTF8':
      return { reason: 'invalid_utf8', code: 1007 };
    case 'WS_ERR_TOO_MANY_BUFFERED_PARTS':
      return { reason: 'flood', code: 1008 };
    default:
      return { reason: 'protocol_error', code: 1002 };
  }
}

/** A fixed-window frame counter: `take` is false once the window's budget is spent. */
export class FrameWindow {
  private start: number;
  private count = 0;
  constructor(
    private readonly budget: FrameBudget,
    now: number,
  ) {
    this.start = now;
  }

  take(now: number): boolean {
    if (now - this.start >= this.budget.windowMs) {
      this.start = now;
      this.count = 0;
    }
    this.count += 1;
    return this.count <= this.budget.frames;
  }
}

export interface SubscriberInputGuard {
  /** Watches what a subscriber sends; `who` names it in log lines (its principal may change). */
  watch(ws: WebSocket, who: () => string): void;
}

export function subscriberInputGuard(deps: {
  logger: Logger;
  prom?: PromRegistry | undefined;
  budget?: FrameBudget;
  now?: () => number;
}): SubscriberInputGuard {
  const budget = deps.budget ?? DEFAULT_FRAME_BUDGET;
  const now = deps.now ?? Date.now;
  const refused = new Counter({
    name: 'maxine_event_stream_refused_input_total',
    help: 'Event streams closed for what their subscriber sent, by reason (too_large 1009, invalid_utf8 1007, protocol_error 1002, flood 1008)',
    labelNames: ['reason'] as const,
    registers: deps.prom === undefined ? [] : [deps.prom],
  });
  for (const reason of ['too_large', 'invalid_utf8', 'protocol_error', 'flood'] as const)
    refused.inc({ reason }, 0);

  return {
    watch(ws, who) {
      const window = new FrameWindow(budget, now());
      let closing = false;
      const frame = (): void => {
        if (closing || window.take(now())) return;
        closing = true;
        refused.inc({ reason: 'flood' });
        deps.logger.warn(
          { who: who(), frames: budget.frames, windowMs: budget.windowMs, closeCode: 1008 },
          'event subscriber sent more frames than the stream allows; closing it (1008)',
        );
        ws.close(
          INPUT_CLOSE.POLICY,
          `too many frames: at most ${budget.frames} per ${budget.windowMs / 1000} s; the stream reads none`,
        );
        // Nothing more is read from it; the close frame goes out, and the socket soon after.
        ws.pause();
        const cut = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
        cut.unref();
        ws.once('close', () => clearTimeout(cut));
      };
      ws.on('message', frame);
      ws.on('ping', frame);
      ws.on('pong', frame);
      ws.on('error', (err: Error & { code?: string }) => {
        // Only frames ws refused close the stream from here; a reset socket is no refusal.
        if (typeof err.code !== 'string' || !err.code.startsWith('WS_ERR_')) return;
        const { reason, code } = refusalOf(err.code);
        refused.inc({ reason });
        deps.logger.warn(
          { who: who(), reason, closeCode: code, error: err.message },
          'event subscriber sent a frame the stream refuses; closed',
        );
      });
    },
  };
}
