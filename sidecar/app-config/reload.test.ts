import { describe, expect, it } from '@jest/globals';
import { parseReloadAction } from '../../common/config-reload.js';
import { processNamed } from './reload.js';

describe('parseReloadAction', () => {
  it.each([
    ['signal:HUP:nginx', { kind: 'signal', signal: 'HUP', process: 'nginx' }],
    ['signal:SIGUSR1:my-app', { kind: 'signal', signal: 'USR1', process: 'my-app' }],
    ['http:POST:/reload', { kind: 'http', method: 'POST', path: '/reload' }],
    ['http:put:/-/reload?x=1', { kind: 'http', method: 'PUT', path: '/-/reload?x=1' }],
    ['signal:KILL:app', 'signal must be one of HUP, USR1, USR2, INT, TERM, QUIT'],
    ['signal:HUP', 'signal:<SIG>:<process name> needs the name of the process to signal'],
    ['signal:HUP:a/b', 'signal:<SIG>:<process name> needs the name of the process to signal'],
    ['http:DELETE:/x', 'http method must be one of POST, PUT, GET'],
    ['http:POST:reload', 'http:<METHOD>:<path> needs a path starting with /'],
    ['exec:/bin/true', 'the reload action is signal:<SIG>:<process name> or http:<METHOD>:<path>'],
  ])('%s', (text, expected) => {
    expect(parseReloadAction(text)).toEqual(expected);
  });
});

describe('processNamed', () => {
  it.each([
    ['nginx', 'nginx\n', 'nginx: master process\0', true],
    ['node', 'node\n', '/usr/bin/node\0server.js\0', true],
    ['my-very-long-process-name', 'my-very-long-pr\n', '/bin/x\0', true],
    ['app', 'sh\n', '/srv/bin/app\0--flag\0', true],
    ['app', 'sh\n', '/bin/sh\0app\0', false],
    ['app', 'apple\n', '/usr/bin/apple\0', false],
    ['app', 'kthreadd\n', '', false],
  ])('%s in comm %j, cmdline %j → %s', (name, comm, cmdline, expected) => {
    expect(processNamed(name, comm, cmdline)).toBe(expected);
  });
});
