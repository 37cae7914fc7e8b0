// @ts-check
/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`) as its top frames by self time.
 * bench/run.js uses it when BENCH_CPU_PROF=1; it also runs alone:
 *
 *   node bench/profile-top.js <file.cpuprofile> [count] [self|total]
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * @typedef {object} Frame
 * @property {string} name function name, file and line
 * @property {number} selfMs self (or total) time
 * @property {number} share of all sampled time, 0..1
 */

/**
 * @param {string} file
 * @param {number} [count]
 * @param {'self' | 'total'} [mode] self time, or total time (the frame and what it calls)
 * @returns {Frame[]}
 */
export function topFrames(file, count = 20, mode = 'self') {
  /** @type {{ nodes: { id: number, children?: number[], callFrame: { functionName: string, url: string, lineNumber: number } }[], samples: number[], timeDeltas: number[] }} */
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  /** @type {Map<number, string>} */
  const nameOf = new Map();
  /** @type {Map<number, number>} */
  const parentOf = new Map();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url === '' ? '' : ` ${shortUrl(url)}:${lineNumber + 1}`;
    nameOf.set(node.id, `${functionName === '' ? '(anonymous)' : functionName}${where}`);
    for (const child of node.children ?? []) parentOf.set(child, node.id);
  }
  /** @type {Map<string, number>} */
  const timeUs = new Map();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    totalUs += delta;
    /** @type {Set<string>} */
    const seen = new Set();
    // Walk up the stack for total time (each name once per sample, for recursion).
    for (let node = id, depth = 0; node !== undefined && depth < 1000; depth += 1) {
      const name = nameOf.get(node) ?? '?';
      if (!seen.has(name)) timeUs.set(name, (timeUs.get(name) ?? 0) + delta);
      seen.add(name);
      if (mode === 'self') break;
      node = /** @type {number} */ (parentOf.get(node));
    }
  });
  return [...timeUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: totalUs > 0 ? us / totalUs : 0 }));
}

/** @param {string} url */
function shortUrl(url) {
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
}

/** @param {Frame[]} frames */
export function formatFrames(frames) {
  return frames
    .map(
      (f) =>
        `${(f.share * 100).toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(7)} ms  ${f.name}`,
    )
    .join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write(
      'usage: node bench/profile-top.js <file.cpuprofile> [count] [self|total]\n',
    );
    process.exit(2);
  }
  const mode = process.argv[4] === 'total' ? 'total' : 'self';
  process.stdout.write(`${formatFrames(topFrames(file, Number(process.argv[3] ?? 20), mode))}\n`);
}
