import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import { fmix32, murmur3, pairHash, unitInterval } from './hash.js';

/** Textbook MurmurHash3 x86 32-bit over bytes, to check the allocation-free UTF-8 path. */
function referenceMurmur3(bytes: Uint8Array, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r));
  let h = seed | 0;
  const blocks = bytes.length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(rotl(Math.imul(k, c1), 15), c2);
    h = (Math.imul(rotl(h ^ k, 13), 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  for (let i = bytes.length - 1; i >= blocks; i--) k = (k << 8) | bytes[i]!;
  if (bytes.length > blocks) h ^= Math.imul(rotl(Math.imul(k, c1), 15), c2);
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const utf8 = new TextEncoder();

describe('murmur3', () => {
  it.each([
    ['', 0, 0],
    ['', 1, 0x514e28b7],
    ['', 0xffffffff, 0x81f16f39],
    ['hello', 0, 0x248bfa47],
    ['The quick brown fox jumps over the lazy dog', 0, 0x2e4ff723],
  ])('murmur3(%j, %d) is the published vector', (text, seed, expected) => {
    expect(murmur3(text, seed)).toBe(expected);
  });

  it.each([
    ['ascii tails of every length', ['a', 'ab', 'abc', 'abcd', 'abcde']],
    ['2-byte UTF-8', ['é', 'ünïcödé', 'Ωμέγα']],
    ['3-byte UTF-8', ['€', '日本語のキー', 'x\u{fffd}y']],
    ['4-byte UTF-8 (surrogate pairs)', ['😀', 'a😀b', '𝄞𝄞𝄞']],
    ['lone surrogates become U+FFFD', ['\ud800', 'a\udc00b', '\ud83d', '\udc00\ud800']],
  ])('hashes the UTF-8 bytes: %s', (_name, texts) => {
    for (const text of texts) {
      for (const seed of [0, 42, 0x9747b28c]) {
        expect(murmur3(text, seed)).toBe(referenceMurmur3(utf8.encode(text), seed));
      }
    }
  });

  it('matches the byte-wise reference on arbitrary strings (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary' }),
          fc.string({ unit: 'grapheme' }),
          // any UTF-16 code units, lone surrogates included
          fc.string({
            unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
          }),
        ),
        fc.integer({ min: 0, max: 0xffffffff }),
        (text, seed) => murmur3(text, seed) === referenceMurmur3(utf8.encode(text), seed),
      ),
      { seed: 20240601, numRuns: 2000 },
    );
  });

  it('returns a uint32', () => {
    for (const text of ['a', 'b', 'hello', '😀']) {
      const h = murmur3(text);
      expect(Number.isInteger(h) && h >= 0 && h <= 0xffffffff).toBe(true);
    }
  });
});

describe('pairHash', () => {
  it('is murmur3 of the id hash as 4 little-endian bytes, seeded with the key hash', () => {
    for (const [keyHash, idHash] of [
      [0, 0],
      [1, 2],
      [0xffffffff, 0x12345678],
      [murmur3('user-1'), murmur3('pod-a')],
    ] as const) {
      const bytes = new Uint8Array(new Uint32Array([idHash]).buffer);
      expect(pairHash(keyHash, idHash)).toBe(referenceMurmur3(bytes, keyHash));
    }
  });
});

describe('fmix32 and unitInterval', () => {
  it('fmix32 is the murmur3 finaliser', () => {
    expect(fmix32(0)).toBe(0);
    expect(fmix32(1)).toBe(0x514e28b7); // murmur3("", 1) is fmix32(1 ^ 0)
  });

  it('maps uint32 into the open interval (0, 1)', () => {
    expect(unitInterval(0)).toBeGreaterThan(0);
    expect(unitInterval(0xffffffff)).toBeLessThan(1);
    expect(Math.log(unitInterval(0xffffffff))).toBeLessThan(0);
  });
});
