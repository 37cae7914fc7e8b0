import { describe, expect, it } from '@jest/globals';
import { describeError, redactedUrl } from './bridge.js';

describe('redactedUrl', () => {
  it.each([
    ['mqtt://127.0.0.1:1883', 'mqtt://127.0.0.1:1883'],
    ['mqtts://user:s3cret@broker:8883', 'mqtts://broker:8883'],
    ['not a url', '(unparsable url)'],
  ])('%s → %s', (url, shown) => {
    expect(redactedUrl(url)).toBe(shown);
    expect(redactedUrl(url)).not.toContain('s3cret');
  });
});

describe('describeError', () => {
  it.each([
    [134, /user name or password \(MQTT reason 0x86\)/],
    [4, /user name or password/],
    [135, /not authorized \(MQTT reason 0x87\): check the user name and password/],
    [5, /not authorized/],
    ['ECONNREFUSED', /connect ECONNREFUSED/],
  ])('code %s → %s', (code, text) => {
    const err = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code });
    expect(describeError(err)).toMatch(text);
  });
});
