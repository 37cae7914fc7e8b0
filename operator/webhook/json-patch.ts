/**
 * A small RFC 6902 JSON-patch applier (add, remove, replace, test) with RFC 6901 pointers.
 * The webhook applies its own patch to a copy of the pod before answering, so a patch the API
 * server could not apply is never sent; the tests apply patches with it to assert on the pod.
 */
import { isDeepStrictEqual } from 'node:util';
import type { JsonPatchOperation } from '../../common/injection-patch.js';

export class JsonPatchError extends Error {
  override readonly name = 'JsonPatchError';
}

type Container = Record<string, unknown> | unknown[];

function unescapeSegment(segment: string): string {
  return segment.replaceAll('~1', '/').replaceAll('~0', '~');
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new JsonPatchError(`"${pointer}" is not a JSON pointer`);
  return pointer.slice(1).split('/').map(unescapeSegment);
}

function isContainer(value: unknown): value is Container {
  return value !== null && typeof value === 'object';
}

function arrayIndex(array: unknown[], segment: string, forAdd: boolean): number {
  if (forAdd && segment === '-') return array.length;
  if (!/^(0|[1-9]\d*)$/.test(segment)) throw new JsonPatchError(`bad array index "${segment}"`);
  const index = Number(segment);
  if (index > array.length || (!forAdd && index === array.length))
    throw new JsonPatchError(`array index ${index} out of range`);
  return index;
}

/** The container a pointer's last segment lives in, and that segment. */
function locate(document: unknown, pointer: string): { parent: Container; key: string } {
  const segments = parsePointer(pointer);
  const key = segments.pop();
  if (key === undefined) throw new JsonPatchError('the root cannot be patched here');
  let current: unknown = document;
  for (const segment of segments) {
    if (!isContainer(current)) throw new JsonPatchError(`${pointer}: no such path`);
    current = Array.isArray(current)
      ? current[arrayIndex(current, segment, false)]
      : Object.hasOwn(current, segment)
        ? current[segment]
        : undefined;
  }
  if (!isContainer(current)) throw new JsonPatchError(`${pointer}: parent does not exist`);
  return { parent: current, key };
}

function read(parent: Container, key: string, pointer: string): unknown {
  if (Array.isArray(parent)) return parent[arrayIndex(parent, key, false)];
  if (!Object.hasOwn(parent, key)) throw new JsonPatchError(`${pointer}: no such member`);
  return parent[key];
}

function applyOne(document: unknown, op: JsonPatchOperation): void {
  const { parent, key } = locate(document, op.path);
  switch (op.op) {
    case 'add':
      if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true), 0, op.value);
      else parent[key] = op.value;
      return;
    case 'remove':
      read(parent, key, op.path);
      if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, false), 1);
      else delete parent[key];
      return;
    case 'replace':
      read(parent, key, op.path);
      if (Array.isArray(parent)) parent[arrayIndex(parent, key, false)] = op.value;
      else parent[key] = op.value;
      return;
    case 'test':
      if (!isDeepStrictEqual(read(parent, key, op.path), op.value))
        throw new JsonPatchError(`${op.path}: test failed`);
      return;
  }
}

/** Applies the operations in order to a deep copy; throws JsonPatchError when one cannot apply. */
export function applyJsonPatch<T>(document: T, operations: readonly JsonPatchOperation[]): T {
  const copy = structuredClone(document);
  // Values are copied too, so the result never shares objects with the patch.
  for (const op of operations)
    applyOne(copy, 'value' in op ? { ...op, value: structuredClone(op.value) } : op);
  return copy;
}
