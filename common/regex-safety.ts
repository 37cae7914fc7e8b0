/**
 * A syntactic safety check for the user-supplied regular expressions of MaxineIntentions
 * (`headers[].regex`, `pathRegex`). Those patterns are compiled as JavaScript and evaluated on
 * request paths and header values in Node, whose backtracking engine can take exponential time
 * on patterns such as `(a+)+` (ReDoS), and they are rendered into Istio/Envoy, whose RE2 engine
 * has no lookaround and no backreferences. A pattern is refused when it has:
 *
 * - lookahead or lookbehind: `(?=`, `(?!`, `(?<=`, `(?<!`;
 * - a backreference: `\1`–`\9` (also `\10` and up) or `\k<name>`;
 * - a nested quantifier: a group that contains a quantifier (`*`, `+`, `?`, `{n,}` or `{n,m}`,
 *   at any depth) and is itself quantified to repeat, as in `(a+)+`, `(a*)*` or `(x|y+){2,}`.
 *   A group that can occur at most once (`?`, `{0,1}`, `{1}`) is fine: `(/v[0-9]+)?` cannot
 *   make the engine try the ways to split a run of input between repetitions.
 *
 * Pure and linear in the pattern length. It is a conservative heuristic, not a proof of
 * linear-time matching: it does not look for overlapping alternatives such as `(a|a)*`, and
 * it refuses some harmless patterns such as `(ab?)+`. It assumes the pattern compiles as a
 * JavaScript regular expression (without flags) and answers something, without throwing, when
 * it does not; checking that it compiles is the caller's job.
 */

export const UNSAFE_REGEX_MESSAGE =
  'must be an RE2-compatible regular expression without nested quantifiers (no lookaround or backreferences)';

interface Group {
  /** A variable-count quantifier applies somewhere inside the group (at any depth). */
  quantified: boolean;
}

interface Quantifier {
  /** Characters the quantifier takes, including a lazy `?`; 0 when there is none. */
  length: number;
  /** It repeats a variable number of times: `*`, `+`, `?`, `{n,}`, `{n,m}` (n < m). */
  variable: boolean;
  /** It may repeat more than once: everything except `?`, `{0,1}`, `{0}` and `{1}`. */
  repeats: boolean;
}

const LOOKAROUND = ['(?=', '(?!', '(?<=', '(?<!'] as const;
const BRACES = /\{(\d+)(,(\d*))?\}/y;
const NO_QUANTIFIER: Quantifier = { length: 0, variable: false, repeats: false };

/** The quantifier that starts at `i`, if any. */
function quantifierAt(pattern: string, i: number): Quantifier {
  const c = pattern[i];
  let q = NO_QUANTIFIER;
  if (c === '*' || c === '+') q = { length: 1, variable: true, repeats: true };
  else if (c === '?') q = { length: 1, variable: true, repeats: false };
  else if (c === '{') {
    // Without the `u` flag, a `{` that does not start `{n}`, `{n,}` or `{n,m}` is a literal.
    BRACES.lastIndex = i;
    const m = BRACES.exec(pattern);
    if (m !== null) {
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      q = { length: m[0].length, variable: max !== min, repeats: max > 1 };
    }
  }
  if (q.length > 0 && pattern[i + q.length] === '?') q = { ...q, length: q.length + 1 }; // lazy
  return q;
}

/** One left-to-right pass over a pattern; each `step` consumes one atom and its quantifier. */
class Scanner {
  private readonly open: { start: number; outer: Group }[] = [];
  private group: Group = { quantified: false };
  private i = 0;

  constructor(private readonly pattern: string) {}

  run(): string | undefined {
    while (this.i < this.pattern.length) {
      const problem = this.step(this.pattern[this.i]!);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }

  private step(c: string): string | undefined {
    if (c === '\\') return this.escape();
    if (c === '(') return this.openGroup();
    if (c === ')') return this.closeGroup();
    if (c === '[') this.skipClass();
    else this.i += 1;
    this.skipQuantifier();
    return undefined;
  }

  /** Steps over the quantifier (if any) after an atom that ends at i. */
  private skipQuantifier(): void {
    const q = quantifierAt(this.pattern, this.i);
    if (q.variable) this.group.quantified = true;
    this.i += q.length;
  }

  private escape(): string | undefined {
    const { pattern, i } = this;
    const next = pattern[i + 1];
    if (next !== undefined && next >= '1' && next <= '9') {
      return `backreference "\\${next}" at ${i}`;
    }
    if (next === 'k' && pattern[i + 2] === '<') return `backreference "\\k<" at ${i}`;
    this.i += 2;
    this.skipQuantifier();
    return undefined;
  }

  /**
   * A character class: skip to its closing `]`. Inside it `\1` is an octal escape and `(?=`
   * three characters, never a backreference or a group.
   */
  private skipClass(): void {
    const { pattern } = this;
    let j = this.i + 1;
    if (pattern[j] === '^') j += 1;
    while (j < pattern.length && pattern[j] !== ']') j += pattern[j] === '\\' ? 2 : 1;
    this.i = j + 1;
  }

  private openGroup(): string | undefined {
    const { pattern, i } = this;
    const look = LOOKAROUND.find((l) => pattern.startsWith(l, i));
    if (look !== undefined) {
      return `${look.includes('<') ? 'lookbehind' : 'lookahead'} "${look}" at ${i}`;
    }
    this.open.push({ start: i, outer: this.group });
    this.group = { quantified: false };
    // Step over the `?` of `(?:` or `(?<name>` so it is not taken for a quantifier.
    this.i += pattern[i + 1] === '?' ? 2 : 1;
    return undefined;
  }

  private closeGroup(): string | undefined {
    const inner = this.group;
    const open = this.open.pop();
    this.i += 1;
    if (open !== undefined) {
      // (Unbalanced, the pattern does not compile; the `)` is skipped like a character.)
      this.group = open.outer;
      const q = quantifierAt(this.pattern, this.i);
      if (inner.quantified && q.repeats) {
        const text = this.pattern.slice(open.start, this.i + q.length);
        return `nested quantifier "${text}" at ${open.start}`;
      }
      if (inner.quantified) this.group.quantified = true;
    }
    this.skipQuantifier();
    return undefined;
  }
}

/**
 * Why `pattern` is unsafe (for example `nested quantifier "(a+)+" at 0`), or undefined when it
 * passes the check.
 */
export function regexSafetyProblem(pattern: string): string | undefined {
  return new Scanner(pattern).run();
}

/** True when `pattern` has no lookaround, no backreference and no nested quantifier. */
export function isSafeRegex(pattern: string): boolean {
  return regexSafetyProblem(pattern) === undefined;
}
