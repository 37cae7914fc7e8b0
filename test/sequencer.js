// Orders the suites for jest's workers, longest first, so that no long suite starts last and
// leaves the other worker idle. jest's own sequencer does this from the durations of the last
// run in this checkout; a fresh clone has none, and jest then orders by file size alone, which
// mixes a 60-second e2e suite in among millisecond unit files. Here a suite without a recorded
// duration gets an estimate: its file size weighed by its tier (an e2e suite starts a control
// plane, an integration suite real servers, a unit suite nothing).
import Sequencer from '@jest/test-sequencer';

const BaseSequencer = Sequencer.default ?? Sequencer;

/** Milliseconds per byte of test file, by tier (rough: only the order matters). */
const WEIGHT = { e2e: 4, integration: 1, unit: 0.25 };

export function estimate(path, size) {
  const tier = /\.e2e\.test\.ts$/.test(path)
    ? 'e2e'
    : /\.int\.test\.ts$/.test(path)
      ? 'integration'
      : 'unit';
  return size * WEIGHT[tier];
}

export default class TierSequencer extends BaseSequencer {
  time(test) {
    const recorded = super.time(test);
    if (recorded !== undefined) return recorded;
    return estimate(test.path, test.context.hasteFS.getSize(test.path) ?? 0);
  }
}
