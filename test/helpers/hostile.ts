/** Helpers of the hostile-input runs: a raw WebSocket handshake, a registry snapshot. */
import { connect } from 'node:net';
import type { Registry } from '../../operator/registry/registry.js';

/** Everything the registry holds, including lease times: any change shows. */
export function registrySnapshot(registry: Registry): string {
  const services = registry.listServices();
  return JSON.stringify({
    services,
    instances: services.map((s) => registry.instancesOf(s.namespace, s.name)),
  });
}

/**
 * Sends `GET path` with the upgrade headers (and any extra header lines, each without CRLF)
 * and resolves with the answer's status; the socket is closed at once, even after a 101.
 */
export function handshakeStatus(
  port: number,
  path: string,
  opts: { version?: string; key?: string; headers?: readonly string[] } = {},
): Promise<number> {
  const { version = '13', key = 'dGhlIHNhbXBsZSBub25jZQ==', headers = [] } = opts;
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let head = '';
    socket.setEncoding('latin1');
    socket.on('connect', () => {
      const extra = headers.map((h) => `${h}\r\n`).join('');
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: ${version}\r\nSec-WebSocket-Key: ${key}\r\n${extra}\r\n`,
        'latin1',
      );
    });
    socket.on('data', (chunk: string) => {
      head += chunk;
      const match = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (match) {
        socket.destroy();
        resolve(Number(match[1]));
      }
    });
    socket.on('error', reject);
    socket.setTimeout(3000, () => {
      socket.destroy();
      reject(new Error(`no answer to handshake on ${path}`));
    });
  });
}
