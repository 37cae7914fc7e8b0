/**
 * A try's connect timeout: an instance that never answers the SYN (a blackholed address, a
 * dead node, a full accept queue) would otherwise hold the try until the per-try or whole-call
 * timeout, or the kernel's minutes of SYN retries. Past `ms` the try ends as a
 * `connect-failure`: retried on another instance as `retryOn` says, counted by the breaker.
 * Only a socket still connecting is timed; a pooled keep-alive socket costs one listener.
 */
import type { ClientRequest } from 'node:http';
import type { Socket } from 'node:net';

export const DEFAULT_CONNECT_TIMEOUT_MS = 1000;

export function armConnectTimeout(request: ClientRequest, ms: number, onTimeout: () => void): void {
  request.once('socket', (socket) => {
    if (socket.connecting) armSocketConnectTimeout(socket, ms, onTimeout);
  });
}

/** The same for a socket still connecting, once the caller has it. */
export function armSocketConnectTimeout(socket: Socket, ms: number, onTimeout: () => void): void {
  const timer = setTimeout(onTimeout, ms);
  const clear = (): void => clearTimeout(timer);
  socket.once('connect', clear);
  socket.once('close', clear);
}
