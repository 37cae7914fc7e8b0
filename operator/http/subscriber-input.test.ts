import { describe, expect, it } from '@jest/globals';
import { FrameWindow, refusalOf } from './subscriber-input.js';

describe('refusalOf', () => {
  it.each([
    ['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'too_large', 1009],
    ['WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 'too_large', 1009],
    ['WS_ERR_INVALID_UTF8', 'invalid_utf8', 1007],
    ['WS_ERR_TOO_MANY_BUFFERED_PARTS', 'flood', 1008],
    ['WS_ERR_INVALID_OPCODE', 'protocol_error', 1002],
    ['WS_ERR_EXPECTED_MASK', 'protocol_error', 1002],
    [undefined, 'protocol_error', 1002],
  ])('%s → %s (%i)', (code, reason, close) => {
    expect(refusalOf(code)).toEqual({ reason, code: close });
  });
});

describe('FrameWindow', () => {
  it.each([
    ['within the budget', [0, 1, 2], [true, true, true]],
    ['past the budget in one window', [0, 1, 2, 3], [true, true, true, false]],
    ['a new window starts afresh', [0, 1, 2, 3, 1000, 1001], [true, true, true, false, true, true]],
  ])('%s', (_name, times, expected) => {
    const w = new FrameWindow({ frames: 3, windowMs: 1000 }, 0);
    expect(times.map((t) => w.take(t))).toEqual(expected);
  });
});
