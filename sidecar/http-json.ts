/**
 * A JSON request over node:http(s) with a deadline. The sidecar uses this rather than
 * `fetch`: undici alone adds ~10 MB to the resident set of a process whose budget is 40 MB,
 * and a keep-alive agent reuses one connection for every heartbeat.
 */
import type { Agent as HttpsAgent } from 'node:https';
import { http, https as loadHttps } from '../common/node-http.js';

const { Agent: HttpAgent, request: httpRequest } = http;

const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 4 });
/** Made with node:https on the first https:// request (node:tls is not loaded before). */
let httpsAgent: HttpsAgent | undefined;

export interface JsonAnswer {
  status: number;
  body: unknown;
}

/** Sends `body` as JSON and parses the answer (`undefined` when empty or not JSON). */
export function requestJson(
  url: URL,
  opts: { method: string; body?: unknown; headers?: Record<string, string>; timeoutMs: number },
): Promise<JsonAnswer> {
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  const secure = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const options = { method: opts.method, headers, timeout: opts.timeoutMs };
    const req = secure
      ? loadHttps().request(url, {
          ...options,
          agent: (httpsAgent ??= new (loadHttps().Agent)({ keepAlive: true, maxSockets: 4 })),
        })
      : httpRequest(url, { ...options, agent: httpAgent });
    const deadline = setTimeout(
      () =>
        req.destroy(new Error(`${opts.method} ${url.pathname}: no answer in ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
    deadline.unref();
    req.on('error', (err) => {
      clearTimeout(deadline);
      reject(err);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        // Answers are small; a huge one is not from our operator.
        if (size > 1024 * 1024) req.destroy(new Error('answer too large'));
        else chunks.push(c);
      });
      res.on('error', (err) => {
        clearTimeout(deadline);
        reject(err);
      });
      res.on('end', () => {
        clearTimeout(deadline);
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text === '' ? undefined : JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.end(payload);
  });
}
