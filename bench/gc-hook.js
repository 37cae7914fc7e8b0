// @ts-check
/**
 * Preloaded into the operator of the memory measurement only
 * (`node --expose-gc --import ./bench/gc-hook.js dist/operator/main.js ...`): SIGUSR2 runs a
 * full garbage collection, so that the live size can be read apart from garbage not yet
 * collected. The operator's code is unchanged.
 */
process.on('SIGUSR2', () => {
  const gc = /** @type {{ gc?: () => void }} */ (globalThis).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
});
