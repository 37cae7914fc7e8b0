// @ts-check
/**
 * Preloaded into the operator of `bench/memory.js` only
 * (`node --expose-gc --import ./bench/heap-hook.js dist/operator/main.js ...`), the operator's
 * code unchanged. SIGUSR2 runs a full garbage collection and writes V8's heap statistics to
 * `$BENCH_HEAP_DIR/heap-stats.json`; SIGWINCH writes a heap snapshot there
 * (`heap.heapsnapshot`), which bench/heap-summary.js sums up by constructor. Each signal
 * answers by writing its file whole (temp file + rename), which the bench waits for.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from 'node:v8';

const dir = process.env.BENCH_HEAP_DIR;

/** @param {string} name @param {(tmp: string) => void} write */
function atomically(name, write) {
  if (dir === undefined) return;
  const tmp = join(dir, `${name}.tmp`);
  write(tmp);
  renameSync(tmp, join(dir, name));
}

process.on('SIGUSR2', () => {
  const gc = /** @type {{ gc?: () => void }} */ (globalThis).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
  atomically('heap-stats.json', (tmp) =>
    writeFileSync(
      tmp,
      JSON.stringify({
        heap: getHeapStatistics(),
        spaces: getHeapSpaceStatistics(),
        memoryUsage: process.memoryUsage(),
      }),
    ),
  );
});

process.on('SIGWINCH', () => {
  atomically('heap.heapsnapshot', (tmp) => writeHeapSnapshot(tmp));
});
