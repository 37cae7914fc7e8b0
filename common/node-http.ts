/**
 * `node:http` loaded with `require`, not with an ESM `import`. On Node 24 and later `node:http`
 * has lazy getters (`WebSocket`, `CloseEvent`, `MessageEvent`) that load undici on first read,
 * and an ESM import of a built-in module reads every export to build its namespace: importing
 * `node:http` from ESM loads undici and web streams, ~7 MB of private memory the sidecar never
 * uses (measured on Node 26: 7.5 MB imported, 0.7 MB required; decision 0027). Node 20 has no
 * such getters, so it loads the same either way. Types still come from `import type`.
 */
import { createRequire } from 'node:module';
import type * as Http from 'node:http';
import type * as Https from 'node:https';

/** The `node:http` module, without its undici-backed getters having been read. */
export const http: typeof Http = createRequire(import.meta.url)('node:http') as typeof Http;

let httpsModule: typeof Https | undefined;

/**
 * `node:https`, required on first call. Loading it loads `node:tls` and sets up OpenSSL's
 * contexts: ~4 MB of private memory on Node 26 (1.5 MB on Node 20), which a sidecar talking
 * to its operator over plain HTTP (the webhook's default URL) never needs (decision 0027,
 * session 11).
 */
export function https(): typeof Https {
  return (httpsModule ??= createRequire(import.meta.url)('node:https') as typeof Https);
}
