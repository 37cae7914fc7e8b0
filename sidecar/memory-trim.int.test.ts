/**
 * The memory trim in a process of its own, with the image's young generation
 * (`--max-semi-space-size=8`): a burst of survivors, as the copy's snapshot is, grows the young
 * generation; once the burst is over, lastResortCollector() gives its pages back (RssAnon from
 * /proc). On Node 24 and later neither a plain full collection nor idleness does
 * (docs/decisions/0027-*.md, session 11).
 */
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

const script = `
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { lastResortCollector } from './sidecar/memory-trim.ts';
const anonKb = () => Number(/RssAnon:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
let burst = new Map();
for (let i = 0; i < 300000; i += 1) burst.set('k' + i, { a: i, b: 'x' + i, c: [i] });
const kept = [...burst.values()].slice(0, 20000);
burst = undefined;
// Past V8's 5 s window of allocation throughput, as the sidecar waits (MAXINE_MEMORY_TRIM_SECONDS).
await sleep(6000);
const before = anonKb();
lastResortCollector()();
await sleep(1000);
process.stdout.write(JSON.stringify({ before, after: anonKb(), kept: kept.length }));
`;

describe('the memory trim, in its own process', () => {
  it('gives back the private memory a burst of survivors grew in the young generation', async () => {
    const { stdout } = await run(
      process.execPath,
      ['--max-semi-space-size=8', '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: process.cwd(), encoding: 'utf8' },
    );
    const r = JSON.parse(stdout) as { before: number; after: number; kept: number };
    expect(r.kept).toBe(20_000);
    expect(r.after).toBeLessThan(r.before - 8 * 1024);
  }, 30_000);
});

const trimScript = `
import { mallocTrimmer } from './sidecar/memory-trim.ts';
const trim = mallocTrimmer();
// After the trimmer: node:ffi warns on its first load only, which is the trimmer's.
const hasFfi = process.getBuiltinModule('node:ffi') !== undefined;
process.stdout.write(JSON.stringify({ hasFfi, trimmer: typeof trim, released: trim?.() }));
`;

describe('malloc_trim through node:ffi, in its own process', () => {
  // MAXINE_TEST_NODE: another Node to run it on (e.g. a Node 26, which has node:ffi).
  it('is called on a Node with node:ffi (glibc) without a warning on stderr, and is absent on one without', async () => {
    const node = process.env.MAXINE_TEST_NODE ?? process.execPath;
    const { stdout, stderr } = await run(
      node,
      ['--import', 'tsx', '--input-type=module', '-e', trimScript],
      { cwd: process.cwd(), encoding: 'utf8' },
    );
    const r = JSON.parse(stdout) as { hasFfi: boolean; trimmer: string; released?: boolean };
    expect(r).toEqual(
      r.hasFfi
        ? { hasFfi: true, trimmer: 'function', released: expect.any(Boolean) }
        : { hasFfi: false, trimmer: 'undefined' },
    );
    expect(stderr).not.toMatch(/FFI/);
  }, 30_000);
});
