/**
 * MurmurHash3 (x86, 32-bit) over the UTF-8 bytes of a string, computed without allocating:
 * the string is encoded on the fly (lone surrogates become U+FFFD, exactly as `TextEncoder`
 * does), so the result equals the reference implementation run over
 * `new TextEncoder().encode(text)`.
 */

// Math's functions are read once: inside a node:vm context (jest) each `Math.x` is a slow
// global lookup (about 1 µs); in the main context this is as fast as `Math.x`.
const { imul } = Math;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const REPLACEMENT_CHARACTER = 0xfffd;

function scrambleBlock(k: number): number {
  const a = imul(k, C1);
  return imul((a << 15) | (a >>> 17), C2);
}

function mixBlock(h: number, k: number): number {
  const a = h ^ scrambleBlock(k);
  return (imul((a << 13) | (a >>> 19), 5) + 0xe6546b64) | 0;
}

/** The murmur3 finaliser: a bijection on uint32 with full avalanche. */
export function fmix32(h: number): number {
  let x = h ^ (h >>> 16);
  x = imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = imul(x, 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** The code point at `text[i]`, assuming `text.charCodeAt(i) >= 0x80`. */
function codePointAt(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c < 0xd800 || c > 0xdfff) return c;
  if (c <= 0xdbff && i + 1 < text.length) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
  }
  return REPLACEMENT_CHARACTER;
}

/** The UTF-8 bytes of a non-ASCII code point, packed first byte lowest. */
function utf8Packed(cp: number): number {
  if (cp < 0x800) return 0xc0 | (cp >>> 6) | ((0x80 | (cp & 0x3f)) << 8);
  if (cp < 0x10000) {
    return 0xe0 | (cp >>> 12) | ((0x80 | ((cp >>> 6) & 0x3f)) << 8) | ((0x80 | (cp & 0x3f)) << 16);
  }
  return (
    0xf0 |
    (cp >>> 18) |
    ((0x80 | ((cp >>> 12) & 0x3f)) << 8) |
    ((0x80 | ((cp >>> 6) & 0x3f)) << 16) |
    ((0x80 | (cp & 0x3f)) << 24)
  );
}

function utf8Length(cp: number): number {
  if (cp < 0x800) return 2;
  return cp < 0x10000 ? 3 : 4;
}

/** MurmurHash3 x86 32-bit of the UTF-8 encoding of `text`; returns a uint32. */
export function murmur3(text: string, seed = 0): number {
  let h = seed | 0;
  let block = 0; // bytes waiting to fill a 4-byte block, first byte lowest
  let filled = 0; // how many bytes `block` holds
  let length = 0; // UTF-8 bytes so far
  for (let i = 0; i < text.length; i++) {
    let bytes = text.charCodeAt(i);
    let count = 1;
    if (bytes >= 0x80) {
      const cp = codePointAt(text, i);
      if (cp > 0xffff) i++;
      bytes = utf8Packed(cp);
      count = utf8Length(cp);
    }
    length += count;
    for (;;) {
      block |= (bytes & 0xff) << (filled << 3);
      if (++filled === 4) {
        h = mixBlock(h, block);
        block = 0;
        filled = 0;
      }
      if (--count === 0) break;
      bytes >>>= 8;
    }
  }
  if (filled > 0) h ^= scrambleBlock(block);
  return fmix32(h ^ length);
}

/**
 * Hash of the pair (key, endpoint) for rendezvous hashing: one murmur3 round over the
 * endpoint's id hash, seeded with the key's hash, then finalised. Equals
 * murmur3 of the 4 little-endian bytes of `idHash` with seed `keyHash`.
 */
export function pairHash(keyHash: number, idHash: number): number {
  return fmix32(mixBlock(keyHash | 0, idHash) ^ 4);
}

/** Maps a uint32 into the open interval (0, 1). */
export function unitInterval(h: number): number {
  return (h + 0.5) / 4294967296;
}
