/** The catalog code a function throws, or undefined when it returns (other errors rethrown). */
import { MaxineError } from '../../common/errors.js';

export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof MaxineError) return e.code;
    throw e;
  }
  return undefined;
}
