/**
 * Parsing of resource YAML (pure): one file may hold several documents. Objects of other API
 * groups (a Deployment kept beside the Maxine resources) are skipped, not errors.
 */
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { nullMap } from '../../common/config-sources.js';
import { dnsSubdomain } from '../../common/names.js';
import { formatPath } from '../../common/errors.js';
import { API_GROUP, parseMaxineResource, resourceKey } from '../../common/resources.js';
import type { MaxineResource } from '../../common/resources.js';

export interface FileIssue {
  /** 0-based index of the YAML document in the file. */
  document: number;
  /** `Kind/namespace/name` when known. */
  object?: string;
  path: string;
  message: string;
}

/** A ConfigMap document of the folder: what `configFrom` resolves in standalone mode. */
export interface FolderConfigMap {
  namespace: string;
  name: string;
  data: Record<string, string>;
}

export interface ParsedFile {
  objects: MaxineResource[];
  issues: FileIssue[];
  skipped: number;
  /** `apiVersion: v1` ConfigMaps (standalone mode's configFrom sources). */
  configMaps?: FolderConfigMap[];
  /** The 0-based YAML document index of each of `configMaps` (for reporting duplicates). */
  configMapDocuments?: number[];
}

const configMapDocument = z.object({
  apiVersion: z.literal('v1'),
  kind: z.literal('ConfigMap'),
  metadata: z.object({ name: dnsSubdomain, namespace: z.string().min(1).optional() }),
  data: z.record(z.string(), z.string()).optional(),
});

const isConfigMap = (value: unknown): boolean =>
  typeof value === 'object' &&
  value !== null &&
  (value as { apiVersion?: unknown }).apiVersion === 'v1' &&
  (value as { kind?: unknown }).kind === 'ConfigMap';

/** Objects in a file larger than this are refused whole (a standalone folder is hand-written). */
export const MAX_FILE_BYTES = 4 * 1024 * 1024;

export function parseResourceFile(text: string): ParsedFile {
  const result: ParsedFile = { objects: [], issues: [], skipped: 0 };
  if (text.length > MAX_FILE_BYTES) {
    result.issues.push({
      document: 0,
      path: '',
      message: `file is larger than ${MAX_FILE_BYTES} bytes`,
    });
    return result;
  }
  const seen = new Set<string>();
  parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true }).forEach((doc, index) => {
    if (doc.errors.length > 0) {
      for (const e of doc.errors)
        result.issues.push({ document: index, path: '', message: e.message.split('\n')[0] ?? '' });
      return;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    if (isConfigMap(value)) {
      addConfigMap(result, value, index);
      return;
    }
    if (!isMaxineObject(value)) {
      result.skipped += 1;
      return;
    }
    const parsed = parseMaxineResource(value);
    const object = describe(value);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        result.issues.push({
          document: index,
          object,
          path: formatPath(issue.path),
          message: issue.message,
        });
      }
      return;
    }
    const key = resourceKey(parsed.data);
    if (seen.has(key)) {
      result.issues.push({
        document: index,
        object: key,
        path: 'metadata.name',
        message: `${key} appears twice in the file`,
      });
      return;
    }
    seen.add(key);
    result.objects.push(parsed.data);
  });
  return result;
}

/** Keeps a ConfigMap document, or reports why it cannot be one (data values must be strings). */
function addConfigMap(result: ParsedFile, value: unknown, index: number): void {
  const parsed = configMapDocument.safeParse(value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues)
      result.issues.push({
        document: index,
        object: describe(value),
        path: formatPath(issue.path),
        message: issue.message,
      });
    return;
  }
  const { metadata } = parsed.data;
  // zod's records drop a `__proto__` key: the data is taken from the document itself (its other
  // values checked above), into a null-prototype map, so the merge can name what it refuses.
  const raw = (value as { data?: Record<string, unknown> }).data ?? {};
  const proto = Object.getOwnPropertyDescriptor(raw, '__proto__')?.value as unknown;
  if (proto !== undefined && typeof proto !== 'string') {
    result.issues.push({
      document: index,
      object: describe(value),
      path: 'data.__proto__',
      message: 'Invalid input: expected string',
    });
    return;
  }
  (result.configMapDocuments ??= []).push(index);
  (result.configMaps ??= []).push({
    namespace: metadata.namespace ?? 'default',
    name: metadata.name,
    data: nullMap(Object.entries(raw) as [string, string][]),
  });
}

function isMaxineObject(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return true; // not a k8s object: report it
  const apiVersion = (value as { apiVersion?: unknown }).apiVersion;
  return typeof apiVersion !== 'string' || apiVersion.split('/')[0] === API_GROUP;
}

function describe(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
  if (typeof v.kind !== 'string' || typeof v.metadata?.name !== 'string') return undefined;
  const ns = typeof v.metadata.namespace === 'string' ? v.metadata.namespace : 'default';
  return `${v.kind}/${ns}/${v.metadata.name}`;
}
