import { describe, expect, it } from '@jest/globals';
import type { ServerResponse } from 'node:http';
import { sseSink, wantsEventStream } from './event-sink.js';

describe('wantsEventStream', () => {
  it.each([
    [undefined, false],
    ['text/event-stream', true],
    ['Text/Event-Stream', true],
    ['text/event-stream; charset=utf-8', true],
    ['application/json, text/event-stream;q=0.9', true],
    ['text/*', false],
    ['*/*', false],
    ['application/json', false],
    ['text/event-streams', false],
  ])('%s → %s', (accept, expected) => {
    expect(wantsEventStream(accept)).toBe(expected);
  });
});

/** A response that records what is written. */
function recorder() {
  const written: string[] = [];
  let ended: string | undefined;
  const res = {
    destroyed: false,
    writable: true,
    writableLength: 0,
    write(chunk: string | Buffer, done?: () => void) {
      written.push(chunk.toString());
      done?.();
      return true;
    },
    end(chunk: string) {
      ended = chunk;
      this.writable = false;
    },
    destroy() {
      this.destroyed = true;
    },
  };
  return { res: res as unknown as ServerResponse, written, ended: () => ended };
}

describe('sseSink framing', () => {
  it.each([
    [
      'an event: id EPOCH:SEQ, event, data',
      '{"seq":5,"type":"service_registered"}',
      { type: 'service_registered', id: 5 },
      'id: ep0ch:5\nevent: service_registered\ndata: {"seq":5,"type":"service_registered"}\n\n',
    ],
    [
      'a snapshot chunk: no id',
      '{"seq":5,"type":"resync_chunk"}',
      { type: 'resync_chunk' },
      'event: resync_chunk\ndata: {"seq":5,"type":"resync_chunk"}\n\n',
    ],
    [
      'shared bytes frame alike',
      Buffer.from('{"seq":6}'),
      { type: 'service_healthy', id: 6 },
      'id: ep0ch:6\nevent: service_healthy\ndata: {"seq":6}\n\n',
    ],
  ])('%s', (_name, payload, framing, expected) => {
    const { res, written } = recorder();
    sseSink(res, () => 'ep0ch').send(payload, framing);
    expect(written.join('')).toBe(expected);
  });

  it('writes a close as a comment and ends; heartbeats are comments; nothing after the end', () => {
    const { res, written, ended } = recorder();
    const sink = sseSink(res, () => 'e');
    sink.heartbeat();
    expect(written).toEqual([': ping\n\n']);
    expect(sink.open).toBe(true);
    sink.close(1013, 'slow consumer: reconnect with since=7');
    expect(ended()).toBe(': closed 1013 slow consumer: reconnect with since=7\n\n');
    expect(sink.open).toBe(false);
    sink.heartbeat();
    expect(written).toHaveLength(1);
  });
});
