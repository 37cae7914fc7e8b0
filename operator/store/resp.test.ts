import { describe, expect, it } from '@jest/globals';
import { encodeCommand, RespError, RespParser } from './resp.js';
import type { Reply } from './resp.js';

describe('encodeCommand', () => {
  it.each([
    [['PING'], '*1\r\n$4\r\nPING\r\n'],
    [['HSET', 'k', 'f', 'é'], '*4\r\n$4\r\nHSET\r\n$1\r\nk\r\n$1\r\nf\r\n$2\r\né\r\n'],
    [['GET', ''], '*2\r\n$3\r\nGET\r\n$0\r\n\r\n'],
  ])('%j', (args, wire) => {
    expect(encodeCommand(args).toString()).toBe(wire);
  });
});

describe('RespParser', () => {
  it.each<[string, string[], Reply[]]>([
    ['a simple string', ['+OK\r\n'], ['OK']],
    ['an integer', [':42\r\n'], [42]],
    ['a bulk string', ['$5\r\nhello\r\n'], ['hello']],
    ['a bulk string with CRLF inside', ['$4\r\na\r\nb\r\n'], ['a\r\nb']],
    ['a null bulk string', ['$-1\r\n'], [null]],
    ['a null array', ['*-1\r\n'], [null]],
    ['an empty array', ['*0\r\n'], [[]]],
    ['a nested array', ['*2\r\n$1\r\na\r\n*1\r\n:1\r\n'], [['a', [1]]]],
    ['pipelined replies', ['+OK\r\n:1\r\n$1\r\nx\r\n'], ['OK', 1, 'x']],
    ['a reply split across chunks', ['$5\r\nhe', 'llo\r', '\n'], ['hello']],
    ['an array split inside an item', ['*2\r\n$1\r\na\r\n$', '1\r\nb\r\n'], [['a', 'b']]],
    ['nothing yet', ['$5\r\nhel'], []],
  ])('reads %s', (_name, chunks, replies) => {
    const parser = new RespParser();
    const out: Reply[] = [];
    for (const chunk of chunks) out.push(...parser.push(Buffer.from(chunk)));
    expect(out).toEqual(replies);
  });

  it('reads an error reply as a RespError', () => {
    const [reply] = new RespParser().push(Buffer.from('-ERR wrong type\r\n'));
    expect(reply).toBeInstanceOf(RespError);
    expect((reply as RespError).message).toBe('ERR wrong type');
  });

  it('refuses an unknown reply type', () => {
    expect(() => new RespParser().push(Buffer.from('?x\r\n'))).toThrow('unexpected reply type');
  });
});
