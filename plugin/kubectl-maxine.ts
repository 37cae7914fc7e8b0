#!/usr/bin/env node
/** The `kubectl-maxine` executable: kubectl runs it for `kubectl maxine ...`. */
import { EXIT } from './exit-codes.js';
import { run } from './main.js';

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  // `kubectl maxine events -f | head`: the reader left; that is not a failure.
  if (err.code === 'EPIPE') process.exit(EXIT.ok);
});
// No top-level await: the single-file bundle (plugin/bundle.ts) is CommonJS, so that it runs
// as an extensionless `kubectl-maxine` anywhere. `run` never rejects.
void run(process.argv.slice(2), {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
}).then((code) => {
  process.exitCode = code;
});
