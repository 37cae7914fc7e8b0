// @ts-check
/**
 * Sums a V8 heap snapshot (`.heapsnapshot`, as `v8.writeHeapSnapshot` writes it) up by what
 * holds the bytes: objects by constructor name, strings, arrays and code by kind, each with its
 * count and self size. The nodes array is read straight from the bytes (a snapshot of a heap
 * of a few hundred MB is larger than the longest string V8 will parse); only the header and
 * the strings table go through JSON.parse.
 *
 *   node bench/heap-summary.js <file.heapsnapshot> [instances]
 */
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';

/**
 * @typedef {object} HeapGroup
 * @property {string} what `constructor` for objects, `(strings)`, `(array) name`, ...
 * @property {number} count
 * @property {number} bytes
 */

/** Node types whose individual names are data (string contents, numbers), grouped as one. */
const GROUPED_TYPES = new Map([
  ['string', '(strings)'],
  ['concatenated string', '(strings)'],
  ['sliced string', '(strings)'],
  ['number', '(heap numbers)'],
  ['bigint', '(bigints)'],
  ['regexp', '(regexps)'],
]);

/**
 * @param {Buffer} buf
 * @param {string} marker e.g. `"nodes":[`
 * @returns {number} the offset just after the marker
 */
function after(buf, marker) {
  const at = buf.indexOf(marker);
  if (at < 0) throw new Error(`heap snapshot without ${marker}`);
  return at + Buffer.byteLength(marker);
}

/**
 * The unsigned integers of a JSON array of numbers, read from `start` to its `]`.
 * @param {Buffer} buf
 * @param {number} start
 * @returns {number[]}
 */
function readInts(buf, start) {
  /** @type {number[]} */
  const out = [];
  let n = 0;
  let inNumber = false;
  for (let i = start; i < buf.length; i += 1) {
    const c = /** @type {number} */ (buf[i]);
    if (c >= 48 && c <= 57) {
      n = n * 10 + (c - 48);
      inNumber = true;
    } else {
      if (inNumber) out.push(n);
      n = 0;
      inNumber = false;
      if (c === 93) return out; // ]
    }
  }
  throw new Error('heap snapshot: unterminated array');
}

/**
 * @param {string} file
 * @returns {{ groups: HeapGroup[], totalBytes: number, nodes: number }} groups by bytes, largest first
 */
export function summarizeHeapSnapshot(file) {
  const buf = readFileSync(file);
  const nodesAt = buf.indexOf('"nodes":[');
  const header = buf.subarray(0, nodesAt).toString('utf8').trim().replace(/,$/, '');
  /** @type {{ snapshot: { meta: { node_fields: string[], node_types: [string[]] } } }} */
  const { snapshot } = JSON.parse(`${header}}`);
  const fields = snapshot.meta.node_fields;
  const types = snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const nodes = readInts(buf, after(buf, '"nodes":['));
  const stringsStart = after(buf, '"strings":[') - 1;
  const stringsEnd = buf.lastIndexOf(']');
  /** @type {string[]} */
  const strings = JSON.parse(buf.subarray(stringsStart, stringsEnd + 1).toString('utf8'));
  /** @type {Map<string, HeapGroup>} */
  const groups = new Map();
  let totalBytes = 0;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[/** @type {number} */ (nodes[i + typeAt])] ?? '?';
    const size = /** @type {number} */ (nodes[i + sizeAt]);
    const name = strings[/** @type {number} */ (nodes[i + nameAt])] ?? '?';
    const what =
      GROUPED_TYPES.get(type) ??
      (type === 'object' || type === 'closure' ? name : `(${type}) ${name}`);
    const group = groups.get(what) ?? { what, count: 0, bytes: 0 };
    group.count += 1;
    group.bytes += size;
    groups.set(what, group);
    totalBytes += size;
  }
  return {
    groups: [...groups.values()].sort((a, b) => b.bytes - a.bytes),
    totalBytes,
    nodes: nodes.length / width,
  };
}

/**
 * @param {{ groups: HeapGroup[], totalBytes: number }} summary
 * @param {number} instances per-instance columns divide by this
 * @param {number} [top]
 * @returns {string} a Markdown table of the largest groups
 */
export function heapTable(summary, instances, top = 20) {
  const mb = (/** @type {number} */ b) => (b / 2 ** 20).toFixed(1);
  const rows = summary.groups.slice(0, top);
  const rest = summary.groups.slice(top).reduce((s, g) => s + g.bytes, 0);
  return [
    '| what (constructor, or kind) | count | self size | bytes per instance | share |',
    '|---|---:|---:|---:|---:|',
    ...rows.map(
      (g) =>
        `| ${g.what.replaceAll('|', '\\|').slice(0, 80)} | ${g.count.toLocaleString('en-US')} | ${mb(g.bytes)} MB | ${(g.bytes / instances).toFixed(0)} | ${((100 * g.bytes) / summary.totalBytes).toFixed(1)}% |`,
    ),
    `| everything else | | ${mb(rest)} MB | ${(rest / instances).toFixed(0)} | ${((100 * rest) / summary.totalBytes).toFixed(1)}% |`,
    `| **total (live heap in the snapshot)** | | **${mb(summary.totalBytes)} MB** | **${(summary.totalBytes / instances).toFixed(0)}** | 100% |`,
  ].join('\n');
}

if (process.argv[1] === import.meta.filename) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node bench/heap-summary.js <file.heapsnapshot> [instances]\n');
    process.exit(2);
  }
  const summary = summarizeHeapSnapshot(file);
  process.stdout.write(`${heapTable(summary, Number(process.argv[3] ?? 1), 30)}\n`);
}
