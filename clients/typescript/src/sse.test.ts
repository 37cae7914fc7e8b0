import { describe, expect, it } from '@jest/globals';
import { ClientError } from '../../../common/client.js';
import { closeOfComment, SseParser } from './sse.js';
import type { SseItem } from './sse.js';

function parseAll(chunks: string[], max?: number): SseItem[] {
  const parser = new SseParser(max);
  return chunks.flatMap((c) => parser.push(c));
}

describe('SseParser', () => {
  it.each<[string, string[], SseItem[]]>([
    [
      'one message with id and event',
      ['id: e:1\nevent: service_registered\ndata: {"a":1}\n\n'],
      [{ kind: 'message', message: { id: 'e:1', event: 'service_registered', data: '{"a":1}' } }],
    ],
    [
      'split anywhere, even inside a field name',
      ['i', 'd: e:2\nda', 'ta: x', '\n', '\n'],
      [{ kind: 'message', message: { id: 'e:2', event: 'message', data: 'x' } }],
    ],
    [
      'CRLF and a CR split from its LF',
      ['data: a\r', '\ndata: b\r\n\r\n'],
      [{ kind: 'message', message: { id: undefined, event: 'message', data: 'a\nb' } }],
    ],
    [
      'bare CR line ends',
      ['data: a\r\rdata: b\r\r'],
      [
        { kind: 'message', message: { id: undefined, event: 'message', data: 'a' } },
        { kind: 'message', message: { id: undefined, event: 'message', data: 'b' } },
      ],
    ],
    [
      'comments, and a message without data is not dispatched',
      [': ping\n\nid: 7\n\n: closed 4401 credential expired\n'],
      [
        { kind: 'comment', text: 'ping' },
        { kind: 'comment', text: 'closed 4401 credential expired' },
      ],
    ],
    [
      'no id: the message says so (the last id stays the caller’s)',
      ['id: e:9\ndata: 1\n\ndata: 2\n\n'],
      [
        { kind: 'message', message: { id: 'e:9', event: 'message', data: '1' } },
        { kind: 'message', message: { id: undefined, event: 'message', data: '2' } },
      ],
    ],
    [
      'field without a colon, retry and unknown fields',
      ['data\nretry: 10\nfoo: bar\n\n'],
      [{ kind: 'message', message: { id: undefined, event: 'message', data: '' } }],
    ],
  ])('%s', (_name, chunks, expected) => {
    expect(parseAll(chunks)).toEqual(expected);
  });

  it.each([
    ['one long data line without an end', ['data: ' + 'x'.repeat(200)]],
    ['many data lines of one message', Array.from({ length: 30 }, () => 'data: 0123456789\n')],
  ])('refuses %s past its bound with BUFFER_FULL', (_name, chunks) => {
    let error: unknown;
    try {
      parseAll(chunks, 100);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ClientError);
    expect((error as ClientError).code).toBe('BUFFER_FULL');
  });
});

describe('closeOfComment', () => {
  it.each([
    ['closed 4401 credential expired: reconnect with a fresh token', 4401],
    ['closed 1013 slow consumer: reconnect with since=5', 1013],
    ['closed 1001 server shutting down', 1001],
    ['ping', undefined],
    ['closed soon', undefined],
  ])('%p -> %p', (text, code) => {
    expect(closeOfComment(text)?.code).toBe(code);
  });
});
