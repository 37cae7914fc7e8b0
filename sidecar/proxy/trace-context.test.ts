import { describe, expect, it } from '@jest/globals';
import {
  formatTraceParent,
  newSpanId,
  newTraceId,
  normalizeTraceState,
  parseTraceParent,
} from './trace-context.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('parseTraceParent', () => {
  const cases: [string, string | string[] | undefined, object | undefined][] = [
    ['valid, sampled', `00-${TRACE}-${SPAN}-01`, { traceId: TRACE, parentId: SPAN, flags: 1 }],
    ['valid, not sampled', `00-${TRACE}-${SPAN}-00`, { traceId: TRACE, parentId: SPAN, flags: 0 }],
    [
      'surrounding spaces',
      ` 00-${TRACE}-${SPAN}-01 `,
      { traceId: TRACE, parentId: SPAN, flags: 1 },
    ],
    ['absent', undefined, undefined],
    ['empty', '', undefined],
    ['garbage', 'hello', undefined],
    ['version ff is forbidden', `ff-${TRACE}-${SPAN}-01`, undefined],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`, undefined],
    ['all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`, undefined],
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`, undefined],
    ['short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`, undefined],
    ['long parent id', `00-${TRACE}-${SPAN}a-01`, undefined],
    ['non-hex flags', `00-${TRACE}-${SPAN}-0g`, undefined],
    ['version 00 with an extra field', `00-${TRACE}-${SPAN}-01-extra`, undefined],
    [
      'a future version with an extra field',
      `01-${TRACE}-${SPAN}-01-extra`,
      { traceId: TRACE, parentId: SPAN, flags: 1 },
    ],
    ['a future version, junk after the flags', `01-${TRACE}-${SPAN}-01x`, undefined],
    ['two headers (joined by Node)', `00-${TRACE}-${SPAN}-01, 00-${TRACE}-${SPAN}-01`, undefined],
    ['an array', [`00-${TRACE}-${SPAN}-01`], undefined],
  ];
  it.each(cases)('%s', (_name, header, expected) => {
    expect(parseTraceParent(header)).toEqual(expected);
  });
});

describe('formatTraceParent', () => {
  it('writes version 00 with two-digit flags, and parses back', () => {
    const tp = { traceId: TRACE, parentId: SPAN, flags: 1 };
    expect(formatTraceParent(tp)).toBe(`00-${TRACE}-${SPAN}-01`);
    expect(parseTraceParent(formatTraceParent(tp))).toEqual(tp);
    expect(formatTraceParent({ ...tp, flags: 0 })).toBe(`00-${TRACE}-${SPAN}-00`);
  });
});

describe('normalizeTraceState', () => {
  const many = Array.from({ length: 40 }, (_, i) => `k${i}=v${i}`);
  const cases: [string, string | string[] | undefined, string | undefined][] = [
    ['absent', undefined, undefined],
    ['one member', 'congo=t61rcWkgMzE', 'congo=t61rcWkgMzE'],
    [
      'spaces trimmed',
      ' rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE ',
      'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
    ],
    ['multi-tenant key', 'tenant@vendor=x', 'tenant@vendor=x'],
    ['invalid members dropped', 'Upper=x,ok=1,noequals,bad=a=b,=v', 'ok=1'],
    ['nothing valid', 'x', undefined],
    ['duplicate key: the first kept', 'a=1,a=2', 'a=1'],
    ['several headers joined', ['a=1', 'b=2'], 'a=1,b=2'],
    ['at most 32 members', many.join(','), many.slice(0, 32).join(',')],
    [
      'a member past 512 characters dropped',
      `a=${'x'.repeat(250)},b=${'y'.repeat(250)},c=1,d=${'z'.repeat(20)}`,
      `a=${'x'.repeat(250)},b=${'y'.repeat(250)},c=1`,
    ],
  ];
  it.each(cases)('%s', (_name, header, expected) => {
    expect(normalizeTraceState(header)).toBe(expected);
  });
});

describe('new ids', () => {
  it('are lower-case hex of the right length, valid as a traceparent, and distinct', () => {
    const traces = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const traceId = newTraceId();
      const spanId = newSpanId();
      expect(traceId).toMatch(/^[\da-f]{32}$/);
      expect(spanId).toMatch(/^[\da-f]{16}$/);
      expect(parseTraceParent(`00-${traceId}-${spanId}-01`)).toBeDefined();
      traces.add(traceId);
    }
    expect(traces.size).toBe(1000);
  });
});
