/**
 * docs/tutorial.md read as a script (pure): its ```sh blocks in order, each with the runner an
 * HTML comment right above it names (`<!-- test: NAME ... -->`, none: run as written) and the
 * output the ```text block right after it shows; its ```yaml blocks; and the matching of a
 * shown output against a printed one (`…` stands for any text, runs of blanks for any blanks).
 */

export interface ShellBlock {
  /** 1-based line of the opening fence. */
  line: number;
  /** The runner the annotation names; `shell` when there is none. */
  runner: string;
  /** The block's commands: comment and empty lines dropped, `\` continuations joined. */
  commands: string[];
  /** The output shown right after the block (its last command's), if any. */
  expected?: string;
}

export interface Tutorial {
  blocks: ShellBlock[];
  /** The bodies of the ```yaml blocks, in order. */
  yaml: string[];
  /** What the page must not have: fences this reader does not run, stray annotations. */
  problems: string[];
}

/** Fence languages that hold commands a reader would run: only `sh` is run, so the others are refused. */
const SHELL_LIKE = new Set(['bash', 'shell', 'console', 'zsh', 'shell-session']);
const ANNOTATION = /^<!--\s*test:\s*([a-z][a-z0-9-]*)[\s\S]*?-->$/;

/** The commands of a block's body, in order. */
export function commandsOf(body: string): string[] {
  return body
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

interface State extends Tutorial {
  /** The runner an annotation named, for the next sh block. */
  pending?: { name: string; line: number };
  /** The last thing seen was this sh block (only blank lines since). */
  lastShell?: ShellBlock;
}

/** The pending annotation, if any, had no sh block right after it. */
function dropPending(state: State): void {
  if (state.pending !== undefined)
    state.problems.push(`line ${state.pending.line}: annotation not followed by a sh block`);
  state.pending = undefined;
}

/** A fenced block of language `lang` opening at `line` (1-based). */
function onFence(state: State, lang: string, body: string, line: number): void {
  if (lang === 'sh') {
    const block: ShellBlock = {
      line,
      runner: state.pending?.name ?? 'shell',
      commands: commandsOf(body),
    };
    if (block.commands.length === 0) state.problems.push(`line ${line}: an empty sh block`);
    state.blocks.push(block);
    state.pending = undefined;
    state.lastShell = block;
    return;
  }
  dropPending(state);
  if (lang === 'text' && state.lastShell !== undefined) state.lastShell.expected = body;
  else if (lang === 'text') state.problems.push(`line ${line}: a text block after no sh block`);
  else if (lang === 'yaml') state.yaml.push(body);
  else if (SHELL_LIKE.has(lang) || lang === '')
    state.problems.push(`line ${line}: a \`\`\`${lang} block (commands go in \`\`\`sh blocks)`);
  state.lastShell = undefined;
}

/** The index of the last line of the construct starting at `i` that ends with `closes`. */
function endOf(lines: string[], i: number, closes: (line: string) => boolean): number {
  let end = i;
  while (end < lines.length - 1 && !closes(lines[end]!)) end++;
  return end;
}

export function parseTutorial(text: string): Tutorial {
  const lines = text.split('\n');
  const state: State = { blocks: [], yaml: [], problems: [] };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    if (line.startsWith('<!--')) {
      const end = endOf(lines, i, (l) => l.includes('-->'));
      const m = ANNOTATION.exec(
        lines
          .slice(i, end + 1)
          .join('\n')
          .trim(),
      );
      if (m !== null) {
        dropPending(state);
        state.pending = { name: m[1]!, line: i + 1 };
      }
      state.lastShell = undefined;
      i = end;
      continue;
    }
    const fence = /^```([\w-]*)\s*$/.exec(line);
    const other = /^\s*(`{3,}|~{3,})/.exec(line);
    if (fence === null && other !== null) {
      // An indented (list item), ~~~, ````-fenced or info-string block: a reader runs its
      // commands, this reader would take them for prose and skip them.
      state.problems.push(
        `line ${i + 1}: a fence this reader does not run (only \`\`\`sh at the margin): ${line.trim()}`,
      );
      const marker = other[1]!;
      i = endOf(lines, i + 1, (l) => l.trim().startsWith(marker));
      dropPending(state);
      state.lastShell = undefined;
      continue;
    }
    if (fence === null) {
      dropPending(state);
      state.lastShell = undefined;
      continue;
    }
    const end = endOf(lines, i + 1, (l) => /^```\s*$/.test(l));
    onFence(state, fence[1]!, lines.slice(i + 1, end).join('\n'), i + 1);
    i = end;
  }
  dropPending(state);
  for (const block of state.blocks) checkBlock(block, state.problems);
  const { blocks, yaml, problems } = state;
  return { blocks, yaml, problems };
}

/**
 * What a block may not do because its outcome would go unchecked: a command sent to the
 * background outside a port-forward block (its status and output are lost), an output shown
 * after a port-forward block (which prints nothing the test could compare).
 */
function checkBlock(block: ShellBlock, problems: string[]): void {
  if (block.runner === 'port-forward') {
    if (block.expected !== undefined)
      problems.push(`line ${block.line}: a port-forward block shows an output nothing compares`);
    return;
  }
  for (const command of block.commands)
    if (/(^|[^&])&\s*$/.test(command))
      problems.push(
        `line ${block.line}: \`${command}\` runs in the background: its status and output go unchecked`,
      );
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const normalize = (s: string) =>
  s
    .replace(/\r/g, '')
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')
    .trim();

/** Whether `actual` is what `expected` shows: `…` is any text, a run of blanks any blanks. */
export function outputMatches(expected: string, actual: string): boolean {
  const pattern = normalize(expected)
    .split('…')
    .map((part) => escape(part).replace(/[ \t]+/g, '[ \\t]+'))
    .join('[\\s\\S]*?');
  return new RegExp(`^${pattern}$`).test(normalize(actual));
}

/** Commands that change the cluster: their output is compared once, never re-run. */
export function isWrite(command: string): boolean {
  return /^(helm |kubectl (apply|create|delete|patch|label|annotate|scale|edit|replace)\b)/.test(
    command,
  );
}
