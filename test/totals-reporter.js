// Prints the run's totals as "N passed, N failed" on a line of its own, and writes them to
// MAXINE_TOTALS_FILE when set, so .ci/run can end with the figure whatever ran before it.
import { writeFileSync } from 'node:fs';

export default class TotalsReporter {
  onRunComplete(_contexts, results) {
    const line = `${results.numPassedTests} passed, ${results.numFailedTests} failed`;
    process.stdout.write(`\n${line}\n`);
    const file = process.env.MAXINE_TOTALS_FILE;
    if (file) {
      writeFileSync(
        file,
        `${results.numPassedTests} ${results.numFailedTests} ${results.numTotalTests}\n`,
      );
    }
  }
}
