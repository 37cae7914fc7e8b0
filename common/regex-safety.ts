/**
 * The user-supplied regular expressions of MaxineIntentions (`headers[].regex`, `pathRegex`)
 * are compiled and evaluated with RE2 semantics (the `re2js` package): matching takes time
 * linear in the input whatever the pattern, so a pattern such as `(a|a)*b` or `(a+)+` cannot
 * stall the event loop (ReDoS), and the same patterns mean the same thing in Istio/Envoy, whose
 * regex engine is RE2 as well. RE2 has no lookaround and no backreferences; a pattern that uses
 * them (or is otherwise not RE2 syntax) does not compile and is refused by the schemas.
 *
 * Never compile a user-supplied pattern with `new RegExp`: use `compileUserRegex` or
 * `fullRegexMatch` from here.
 */
import { createRequire } from 'node:module';
import type * as Re2 from 're2js';
import type { RE2JS } from 're2js';

/**
 * re2js (~1 MB of heap once loaded) is required on first use, not imported: most processes
 * never see a user pattern, and the sidecar's start-up must not pay for it (decision 0027).
 */
let re2: typeof RE2JS | undefined;
function engine(): typeof RE2JS {
  re2 ??= (createRequire(import.meta.url)('re2js') as typeof Re2).RE2JS;
  return re2;
}

export const INVALID_REGEX_MESSAGE =
  'must be an RE2 regular expression (no lookaround or backreferences)';

/** Why `pattern` is not valid RE2 syntax (the parser's message), or undefined when it is. */
export function regexSyntaxProblem(pattern: string): string | undefined {
  try {
    engine().compile(pattern);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Compiles a user-supplied pattern with RE2 semantics; throws when it is not RE2 syntax. */
export function compileUserRegex(pattern: string): RE2JS {
  return engine().compile(pattern);
}

const REGEX_CACHE_LIMIT = 1024;
const regexCache = new Map<string, RE2JS>();

/**
 * Whether the whole of `value` matches `pattern` (RE2, linear time). Each pattern is compiled
 * once; the cache is bounded (dropped whole when it overflows). The schemas refuse patterns
 * that do not compile, so a throw here means a caller skipped validation.
 */
export function fullRegexMatch(pattern: string, value: string): boolean {
  let re = regexCache.get(pattern);
  if (re === undefined) {
    if (regexCache.size >= REGEX_CACHE_LIMIT) regexCache.clear();
    re = compileUserRegex(pattern);
    regexCache.set(pattern, re);
  }
  return re.testExact(value);
}
