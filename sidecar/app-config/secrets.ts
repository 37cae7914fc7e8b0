/**
 * The values of a config's Secret-sourced keys, read by the sidecar itself from the API server
 * with its pod's ServiceAccount token: the operator announces only each key's Secret, key and
 * digest (docs/decisions/0023-config-from-secrets.md). A value is taken only when its digest
 * (HMAC keyed by the Secret's uid, common/config-sources.ts) is the one announced, so the files
 * and `GET /v1/config` never mix a value with a version it does not belong to.
 */
import { readFile } from 'node:fs/promises';
import { http, https } from '../../common/node-http.js';
import { secretDigest, secretNames } from '../../common/config-sources.js';
import type { ConfigSecrets } from '../../common/config-sources.js';

/** A Secret as the API server answers it: its uid and base64 data. */
export interface SecretObject {
  uid: string;
  data: Record<string, string>;
}

/** Reads Secret `name` of the pod's namespace (undefined: it does not exist). */
export type SecretRead = (name: string) => Promise<SecretObject | undefined>;

/** A Secret read does not (yet) hold what the operator announced: try again later. */
export class SecretNotReady extends Error {}

/**
 * The config with each Secret-sourced key's value filled in. Throws SecretNotReady when a
 * Secret is missing, lacks a key or holds a value whose digest differs from the announced one
 * (it changed since, and the operator's next announcement will say so).
 */
export async function withSecretValues(
  config: Readonly<Record<string, string>>,
  secrets: ConfigSecrets,
  read: SecretRead,
): Promise<Record<string, string>> {
  const objects = new Map<string, SecretObject>();
  for (const name of secretNames(secrets)) {
    const object = await read(name);
    if (object === undefined) throw new SecretNotReady(`Secret ${name} not found`);
    objects.set(name, object);
  }
  const out: Record<string, string> = { ...config };
  for (const [key, ref] of Object.entries(secrets)) {
    const object = objects.get(ref.secret);
    const base64 = object?.data[ref.key];
    if (object === undefined || base64 === undefined)
      throw new SecretNotReady(`Secret ${ref.secret} has no key ${ref.key}`);
    const bytes = Buffer.from(base64, 'base64');
    if (secretDigest(object.uid, bytes) !== ref.digest)
      throw new SecretNotReady(
        `Secret ${ref.secret} key ${ref.key} differs from the announced version`,
      );
    out[key] = bytes.toString('utf8');
  }
  return out;
}

export interface KubeSecretReaderOptions {
  /** The API server, e.g. `https://10.96.0.1:443`. */
  apiUrl: string;
  namespace: string;
  /** The pod's ServiceAccount token (read on every call: the kubelet rotates it). */
  tokenFile: string;
  /** The cluster CA (PEM); absent: the system's roots. */
  caFile?: string;
  timeoutMs?: number;
}

/** HTTP GET of a Secret with the pod's token: one request per read, nothing cached. */
export function kubeSecretReader(opts: KubeSecretReaderOptions): SecretRead {
  return async (name) => {
    const [token, ca] = await Promise.all([
      readFile(opts.tokenFile, 'utf8'),
      opts.caFile === undefined ? undefined : readFile(opts.caFile),
    ]);
    const url = new URL(
      `/api/v1/namespaces/${encodeURIComponent(opts.namespace)}/secrets/${encodeURIComponent(name)}`,
      opts.apiUrl,
    );
    const { status, body } = await get(url, token.trim(), ca, opts.timeoutMs ?? 5_000);
    if (status === 404) return undefined;
    if (status !== 200) {
      // The answer of a refused read is a Status (no values): its message says which right is missing.
      const message = statusMessage(body);
      throw new Error(`reading Secret ${name}: HTTP ${status}${message ? `: ${message}` : ''}`);
    }
    const object = JSON.parse(body) as {
      metadata?: { uid?: string };
      data?: Record<string, string>;
    };
    return { uid: object.metadata?.uid ?? '', data: object.data ?? {} };
  };
}

function statusMessage(body: string): string | undefined {
  try {
    const m = (JSON.parse(body) as { message?: unknown }).message;
    return typeof m === 'string' ? m.slice(0, 300) : undefined;
  } catch {
    return undefined;
  }
}

function get(
  url: URL,
  token: string,
  ca: Buffer | undefined,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? https().request : http.request;
    const req = send(
      url,
      {
        method: 'GET',
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        ...(ca !== undefined && { ca }),
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          // A Secret is at most 1 MiB; more is not a Secret.
          if (size > 4 * 1024 * 1024) req.destroy(new Error('Secret answer too large'));
          else chunks.push(chunk);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
