import { describe, expect, it } from '@jest/globals';
import { HEALTH_CHECK_ANNOTATION, parseHealthCheckOverride } from './annotations.js';

describe('parseHealthCheckOverride', () => {
  it('uses the maxine.io annotation key', () => {
    expect(HEALTH_CHECK_ANNOTATION).toBe('maxine.io/health-check');
  });

  it('treats an absent annotation as no override', () => {
    expect(parseHealthCheckOverride(undefined)).toEqual({ ok: true, spec: undefined });
  });

  it('parses a valid override and applies the schema defaults', () => {
    expect(
      parseHealthCheckOverride('{"http":{"path":"/healthz","port":8081},"failureThreshold":5}'),
    ).toEqual({
      ok: true,
      spec: {
        http: { path: '/healthz', port: 8081, scheme: 'http' },
        intervalSeconds: 10,
        failureThreshold: 5,
        successThreshold: 1,
      },
    });
    expect(parseHealthCheckOverride('{"exec":{"command":["/bin/check","--fast"]}}')).toEqual({
      ok: true,
      spec: {
        exec: { command: ['/bin/check', '--fast'] },
        intervalSeconds: 10,
        failureThreshold: 3,
        successThreshold: 1,
      },
    });
  });

  it.each([
    ['invalid JSON', '{"tcp":', /^not valid JSON \(.+\)$/],
    ['an empty value', '  ', /^empty; expected a JSON object$/],
    ['a JSON array', '[]', /expected object, received array/],
    [
      'two kinds of check',
      '{"exec":{"command":["true"]},"tcp":{}}',
      /^exactly one of exec, http or tcp must be set \(found 2\)$/,
    ],
    ['no kind of check', '{"intervalSeconds":5}', /exactly one of exec, http or tcp .*found 0/],
    [
      'a timeout longer than the interval',
      '{"tcp":{},"intervalSeconds":5,"timeoutSeconds":10}',
      /^timeoutSeconds: timeoutSeconds \(10\) must not exceed intervalSeconds \(5\)$/,
    ],
    ['a path without a slash', '{"http":{"path":"healthz"}}', /^http\.path: must start with "\/"$/],
    ['an empty command', '{"exec":{"command":[]}}', /^exec\.command: /],
    ['an empty argument', '{"exec":{"command":["a",""]}}', /^exec\.command\[1\]: /],
    ['a port out of range', '{"tcp":{"port":70000}}', /^tcp\.port: /],
    ['a port as a string', '{"tcp":{"port":"80"}}', /^tcp\.port: .*expected number/],
    ['a zero threshold', '{"tcp":{},"failureThreshold":0}', /^failureThreshold: /],
    ['an unknown field', '{"tcp":{},"colour":"blue"}', /Unrecognized key: "colour"/],
    ['an unknown scheme', '{"http":{"path":"/","scheme":"ftp"}}', /^http\.scheme: /],
  ])('rejects %s with a readable message', (_name, value, message) => {
    const parsed = parseHealthCheckOverride(value);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toMatch(message);
  });

  it('reports every issue, one clause each', () => {
    const parsed = parseHealthCheckOverride('{"tcp":{"port":0},"successThreshold":1000}');
    expect(parsed).toEqual({
      ok: false,
      message: expect.stringMatching(/^tcp\.port: .+; successThreshold: .+$/),
    });
  });
});
