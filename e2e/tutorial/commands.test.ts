import { describe, expect, it } from '@jest/globals';
import { parseExec, parsePortForward, withoutHostFlags } from './commands.js';

describe('parseExec', () => {
  it.each([
    [
      "kubectl exec deploy/web -n tutorial -c shell -- curl -s -w ' %{http_code}' localhost:7711/x",
      {
        deployment: 'web',
        namespace: 'tutorial',
        container: 'shell',
        command: "curl -s -w ' %{http_code}' localhost:7711/x",
      },
    ],
    ['kubectl exec web-abc -n tutorial -c shell -- curl x', undefined],
    ['kubectl exec deploy/web -c shell -- curl x', undefined],
    ['kubectl exec deploy/web -n tutorial -c shell -- ', undefined],
    ['kubectl exec -it deploy/web -n tutorial -c shell -- sh', undefined],
  ])('%s', (line, parsed) => {
    expect(parseExec(line)).toEqual(parsed);
  });
});

describe('parsePortForward', () => {
  it.each([
    [
      'kubectl port-forward -n maxine-system svc/maxine-operator 7710 >/dev/null &',
      {
        namespace: 'maxine-system',
        service: 'maxine-operator',
        localPort: 7710,
        servicePort: 7710,
      },
    ],
    [
      'kubectl port-forward -n maxine-system svc/maxine-operator 8080:7710 &',
      {
        namespace: 'maxine-system',
        service: 'maxine-operator',
        localPort: 8080,
        servicePort: 7710,
      },
    ],
    // In the foreground it would never return: the page must background it.
    ['kubectl port-forward -n maxine-system svc/maxine-operator 7710', undefined],
    ['kubectl port-forward -n maxine-system pod/maxine-operator-0 7710 &', undefined],
  ])('%s', (line, parsed) => {
    expect(parsePortForward(line)).toEqual(parsed);
  });
});

describe('withoutHostFlags', () => {
  it.each([
    [
      ['--mode', 'kubernetes', '--host', '0.0.0.0', '--port', '7710', '--log-level', 'info'],
      ['--mode', 'kubernetes', '--log-level', 'info'],
    ],
    [
      [
        '--sidecar-operator-url=http://x:7710',
        '--webhook-dns-names',
        'a,b',
        '--policy-namespaces',
        'm',
      ],
      ['--policy-namespaces', 'm'],
    ],
    [[], []],
  ])('%j', (args, kept) => {
    expect(withoutHostFlags(args)).toEqual(kept);
  });
});
