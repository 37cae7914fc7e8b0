// @ts-check
/**
 * The wire formats the peers of `npm run bench` speak (bench/peers.js): etcd's HTTP/JSON
 * gateway (base64 keys and values) and Consul's health API, and the versions read from the
 * builder modules' go.mod files. Pure functions only (no I/O), so that test/bench-peers.test.ts
 * can check them table-driven.
 */
import { Buffer } from 'node:buffer';

/** @typedef {import('./report.js').Summary} Summary */

/**
 * The first key after every key that starts with `prefix` (etcd's `range_end` for a prefix
 * read, as `etcdctl get --prefix` computes it): the last byte below 0xff incremented, the
 * bytes after it dropped; "\0" (every key) when every byte is 0xff.
 * @param {string} prefix
 * @returns {Buffer}
 */
export function prefixRangeEnd(prefix) {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i -= 1) {
    const byte = /** @type {number} */ (bytes[i]);
    if (byte < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i] = byte + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

/**
 * The body of `POST /v3/kv/range` reading every key under `prefix`.
 * @param {string} prefix
 * @returns {string}
 */
export function etcdRangeBody(prefix) {
  return JSON.stringify({
    key: Buffer.from(prefix, 'utf8').toString('base64'),
    range_end: prefixRangeEnd(prefix).toString('base64'),
  });
}

/**
 * The body of `POST /v3/kv/put`.
 * @param {string} key
 * @param {string} value
 * @returns {string}
 */
export function etcdPutBody(key, value) {
  return JSON.stringify({
    key: Buffer.from(key, 'utf8').toString('base64'),
    value: Buffer.from(value, 'utf8').toString('base64'),
  });
}

/**
 * @param {string} text an answer of etcd's gateway
 * @returns {Record<string, unknown>} its JSON object; throws with etcd's own message on an error answer
 */
function etcdObject(text) {
  /** @type {unknown} */
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`etcd: not JSON: ${text.slice(0, 200)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error(`etcd: not a JSON object: ${text.slice(0, 200)}`);
  const object = /** @type {Record<string, unknown>} */ (parsed);
  if (object.code !== undefined || object.error !== undefined)
    throw new Error(
      `etcd: error ${String(object.code)}: ${String(object.message ?? object.error)}`,
    );
  return object;
}

/**
 * The keys and values of a `POST /v3/kv/range` answer, decoded (the gateway sends them in
 * base64 and leaves `kvs` out when nothing matched).
 * @param {string} text
 * @returns {{ key: string, value: string }[]}
 */
export function etcdKvs(text) {
  const object = etcdObject(text);
  const kvs = object.kvs ?? [];
  if (!Array.isArray(kvs)) throw new Error('etcd: kvs is not an array');
  return kvs.map((kv) => {
    if (typeof kv !== 'object' || kv === null) throw new Error('etcd: a kv is not an object');
    const { key, value = '' } = /** @type {{ key?: unknown, value?: unknown }} */ (kv);
    if (typeof key !== 'string' || typeof value !== 'string')
      throw new Error('etcd: a kv without a base64 key or value');
    return {
      key: Buffer.from(key, 'base64').toString('utf8'),
      value: Buffer.from(value, 'base64').toString('utf8'),
    };
  });
}

/**
 * The token of a `POST /v3/auth/authenticate` answer (sent as is in `Authorization`).
 * @param {string} text
 * @returns {string}
 */
export function etcdToken(text) {
  const { token } = etcdObject(text);
  if (typeof token !== 'string' || token === '') throw new Error('etcd: no token in the answer');
  return token;
}

/**
 * The instances of a Consul `GET /v1/health/service/<name>` answer: one entry per instance,
 * with the status of its worst check (node checks included, as `?passing` filters on them).
 * @param {string} text
 * @returns {{ id: string, address: string, port: number, status: string }[]}
 */
export function consulInstances(text) {
  /** @type {unknown} */
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`consul: not JSON: ${text.slice(0, 200)}`);
  }
  if (!Array.isArray(parsed)) throw new Error(`consul: not a JSON array: ${text.slice(0, 200)}`);
  const rank = { passing: 0, warning: 1, critical: 2 };
  return parsed.map((entry) => {
    const { Service: service, Checks: checks = [] } =
      /** @type {{ Service?: { ID?: unknown, Address?: unknown, Port?: unknown }, Checks?: unknown }} */ (
        entry ?? {}
      );
    if (
      typeof service !== 'object' ||
      typeof service.ID !== 'string' ||
      typeof service.Address !== 'string' ||
      typeof service.Port !== 'number'
    )
      throw new Error('consul: an entry without Service.ID, Service.Address and Service.Port');
    if (!Array.isArray(checks)) throw new Error('consul: Checks is not an array');
    let status = 'passing';
    for (const check of checks) {
      const s = String(/** @type {{ Status?: unknown }} */ (check ?? {}).Status);
      const known = /** @type {Record<string, number>} */ (rank);
      if ((known[s] ?? 3) > (known[status] ?? 3)) status = s;
    }
    return { id: service.ID, address: service.Address, port: service.Port, status };
  });
}

/**
 * The version a go.mod requires of `module` (a `require` line or an entry of a `require`
 * block; `// indirect` and other comments ignored), as e2e/controlplane/build.sh's `modver`.
 * @param {string} goMod the go.mod text
 * @param {string} module
 * @returns {string | undefined}
 */
export function requiredVersion(goMod, module) {
  for (const raw of goMod.split('\n')) {
    const line = raw.replace(/^\s*require\s+/, '').trim();
    const [name, version] = line.split(/\s+/);
    if (name === module && version !== undefined && /^v\d/.test(version)) return version;
  }
  return undefined;
}

/**
 * The value stored for instance `i` of the peers' 10 instances: the fields of a Maxine
 * instance (host, port, version, zone, weight, health), so that each peer answers about as
 * many bytes per instance as Maxine does.
 * @param {string} service
 * @param {number} i
 * @returns {{ id: string, host: string, port: number, version: string, zone: string, weight: number }}
 */
export function peerInstance(service, i) {
  return {
    id: `${service}-${String(i + 1).padStart(2, '0')}`,
    host: `10.0.0.${i + 1}`,
    port: 8080,
    version: 'v1',
    zone: i % 2 === 0 ? 'a' : 'b',
    weight: 1 + (i % 3),
  };
}

/**
 * Maxine ÷ peer, from the same run: the ratio of their throughput ratios to the bare
 * reference (each measured next to its own reference run, so drift cancels), and the peer's
 * CPU per request over Maxine's.
 * @param {Pick<Summary, 'ratioRps' | 'cpuUsPerRequest'> | undefined} maxine
 * @param {Pick<Summary, 'ratioRps' | 'cpuUsPerRequest'> | undefined} peer
 * @returns {{ throughput: number, cpu: number }}
 */
export function versus(maxine, peer) {
  const mr = maxine?.ratioRps;
  const pr = peer?.ratioRps;
  return {
    throughput: mr !== undefined && pr !== undefined && pr > 0 ? mr / pr : Number.NaN,
    cpu:
      maxine !== undefined && peer !== undefined && maxine.cpuUsPerRequest > 0
        ? peer.cpuUsPerRequest / maxine.cpuUsPerRequest
        : Number.NaN,
  };
}
