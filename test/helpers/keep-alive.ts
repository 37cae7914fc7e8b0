/**
 * A node:http client over a few kept-alive connections, for tests that send thousands of
 * requests: in a jest worker a fetch() costs about 2.5 times as much (memory-bounds.int:
 * 20,000 requests in 26 s with fetch, 10 s with this).
 */
import { Agent, request } from 'node:http';

export interface KeepAliveReply {
  status: number;
  text: string;
}

export interface KeepAliveClient {
  /** One request (a JSON body when `body` is given); the status and the whole body. */
  send(url: string, method: string, body?: unknown): Promise<KeepAliveReply>;
  /** Closes the connections. */
  close(): void;
}

export function keepAliveClient(sockets: number): KeepAliveClient {
  const agent = new Agent({ keepAlive: true, maxSockets: sockets });
  return {
    send: (url, method, body) =>
      new Promise((resolve, reject) => {
        const headers = body === undefined ? {} : { 'content-type': 'application/json' };
        const req = request(url, { method, agent, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }),
          );
        });
        req.on('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      }),
    close: () => agent.destroy(),
  };
}
