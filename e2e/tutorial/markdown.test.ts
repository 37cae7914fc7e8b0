import { describe, expect, it } from '@jest/globals';
import { commandsOf, isWrite, outputMatches, parseTutorial } from './markdown.js';

const fence = (lang: string, body: string) => `\`\`\`${lang}\n${body}\n\`\`\``;

describe('parseTutorial', () => {
  it.each([
    [
      'a plain sh block runs in the shell',
      fence('sh', 'kubectl get pods'),
      [{ line: 1, runner: 'shell', commands: ['kubectl get pods'] }],
      [],
    ],
    [
      'an annotation right above names the runner, across lines',
      `<!-- test: exec-in-pod. KWOK runs\nno containers -->\n\n${fence('sh', 'kubectl exec x -- y')}`,
      [{ line: 4, runner: 'exec-in-pod', commands: ['kubectl exec x -- y'] }],
      [],
    ],
    [
      'the text block right after is the expected output',
      `${fence('sh', '# a comment\nkubectl a \\\n  b\n\nkubectl c')}\n\n${fence('text', 'out')}`,
      [{ line: 1, runner: 'shell', commands: ['kubectl a b', 'kubectl c'], expected: 'out' }],
      [],
    ],
    [
      'an annotation before prose is refused',
      `<!-- test: port-forward -->\nsome prose\n${fence('sh', 'x')}`,
      [{ line: 3, runner: 'shell', commands: ['x'] }],
      ['line 1: annotation not followed by a sh block'],
    ],
    [
      'an annotation applies to one block only',
      `<!-- test: helm-install -->\n${fence('sh', 'a')}\n${fence('sh', 'b')}`,
      [
        { line: 2, runner: 'helm-install', commands: ['a'] },
        { line: 5, runner: 'shell', commands: ['b'] },
      ],
      [],
    ],
    [
      'a bash or console block, an empty block and a stray text block are refused',
      `${fence('bash', 'rm -rf x')}\n${fence('console', '$ y')}\n${fence('sh', '# nothing')}\n\nprose\n${fence('text', 'z')}`,
      [{ line: 7, runner: 'shell', commands: [] }],
      [
        'line 1: a ```bash block (commands go in ```sh blocks)',
        'line 4: a ```console block (commands go in ```sh blocks)',
        'line 7: an empty sh block',
        'line 12: a text block after no sh block',
      ],
    ],
    [
      'an indented (list item), ~~~, ```` or info-string fence is refused, not read as prose',
      [
        '1. Apply it:',
        '   ```sh',
        '   kubectl apply -f x',
        '   ```',
        '~~~sh',
        'kubectl delete ns y',
        '~~~',
        '````sh',
        'helm install z',
        '````',
        '```sh title="run me"',
        'kubectl get pods',
        '```',
        fence('sh', 'a'),
      ].join('\n'),
      [{ line: 14, runner: 'shell', commands: ['a'] }],
      [
        'line 2: a fence this reader does not run (only ```sh at the margin): ```sh',
        'line 5: a fence this reader does not run (only ```sh at the margin): ~~~sh',
        'line 8: a fence this reader does not run (only ```sh at the margin): ````sh',
        'line 11: a fence this reader does not run (only ```sh at the margin): ```sh title="run me"',
      ],
    ],
    [
      'a command sent to the background outside port-forward, and an output after port-forward, are refused',
      [
        fence('sh', 'kubectl port-forward svc/x 1 &\nkubectl get pods && echo done'),
        '<!-- test: port-forward -->',
        fence('sh', 'kubectl port-forward -n a svc/b 7710 &'),
        fence('text', 'Forwarding from 127.0.0.1:7710'),
      ].join('\n'),
      [
        {
          line: 1,
          runner: 'shell',
          commands: ['kubectl port-forward svc/x 1 &', 'kubectl get pods && echo done'],
        },
        {
          line: 6,
          runner: 'port-forward',
          commands: ['kubectl port-forward -n a svc/b 7710 &'],
          expected: 'Forwarding from 127.0.0.1:7710',
        },
      ],
      [
        'line 1: `kubectl port-forward svc/x 1 &` runs in the background: its status and output go unchecked',
        'line 6: a port-forward block shows an output nothing compares',
      ],
    ],
    [
      'other comments are prose',
      `<!-- a note -->\n${fence('sh', 'a')}`,
      [{ line: 2, runner: 'shell', commands: ['a'] }],
      [],
    ],
  ])('%s', (_what, text, blocks, problems) => {
    const parsed = parseTutorial(text);
    expect(parsed.blocks).toEqual(blocks);
    expect(parsed.problems).toEqual(problems);
  });

  it('collects the yaml blocks', () => {
    expect(parseTutorial(`${fence('yaml', 'a: 1')}\n${fence('sh', 'x')}`).yaml).toEqual(['a: 1']);
  });
});

describe('outputMatches', () => {
  it.each([
    ['hello from orders', 'hello from orders\n', true],
    ['hello from orders', 'hello from web\n', false],
    ['NAME   READY\nweb    1/1', 'NAME  READY\nweb   1/1   \n', true],
    ['NAME   READY\nweb    1/1', 'NAME READY\nweb 1/1\norders 0/1', false],
    ['{"id":"orders-…","port":8080,…}', '{"id":"orders-ab12","port":8080,"x":1}', true],
    ['{"id":"orders-…","port":8080,…}', '{"id":"web-ab12","port":8080,"x":1}', false],
    ['Reason: a …', 'Reason: a b\nc', true],
    ['a (b) [c] $d', 'a (b) [c] $d', true],
  ])('%j against %j: %s', (expected, actual, result) => {
    expect(outputMatches(expected, actual)).toBe(result);
  });
});

describe('commandsOf and isWrite', () => {
  it.each([
    ['kubectl apply -f x', true],
    ['kubectl patch mint a', true],
    ['helm install maxine charts/maxine', true],
    ['kubectl get pods', false],
    ['kubectl maxine status', false],
    ['kubectl exec deploy/web -- curl -s x', false],
  ])('%s is a write: %s', (command, write) => {
    expect(isWrite(command)).toBe(write);
    expect(commandsOf(command)).toEqual([command]);
  });
});
