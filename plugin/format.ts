/**
 * Output in kubectl's manner (pure): a table with upper-case headers and columns three spaces
 * apart (more columns with `-o wide`), or the API's objects as JSON or YAML.
 */
import { stringify } from 'yaml';

export interface Column<T> {
  header: string;
  value: (row: T) => string;
  /** Only with `-o wide`. */
  wide?: boolean;
}

export function table<T>(rows: readonly T[], columns: readonly Column<T>[], wide: boolean): string {
  const shown = columns.filter((c) => wide || c.wide !== true);
  const cells = [shown.map((c) => c.header), ...rows.map((r) => shown.map((c) => c.value(r)))];
  const widths = shown.map((_, i) => Math.max(...cells.map((line) => (line[i] ?? '').length)));
  return cells
    .map((line) =>
      line
        .map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('   ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}

export type Output = 'table' | 'wide' | 'json' | 'yaml' | 'dot';

/** `-o json|yaml` print `data` as the API gave it; else the table. */
export function render<T>(
  output: Output,
  data: unknown,
  rows: readonly T[],
  columns: readonly Column<T>[],
): string {
  if (output === 'json') return `${JSON.stringify(data, null, 2)}\n`;
  if (output === 'yaml') return stringify(data);
  return table(rows, columns, output === 'wide');
}

/** kubectl's `<none>` for an empty cell. */
export const orNone = (v: string | number | undefined | null): string =>
  v === undefined || v === null || v === '' ? '<none>' : String(v);
