/**
 * A TCP front for tests, as a Service is in front of replicas: each new connection goes to the
 * first of `targets()` that accepts it; `to(...)` changes the targets and drops the open
 * connections (as a replica's death or a rebalance would).
 */
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';

export interface TcpFront {
  url: string;
  /** New connections go to these ports, the first that accepts; open ones are dropped. */
  to(...ports: number[]): void;
  close(): Promise<void>;
}

export async function startTcpFront(...initial: number[]): Promise<TcpFront> {
  let targets = initial;
  const open = new Set<Socket>();
  const track = (s: Socket): void => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => undefined);
  };
  const attach = (client: Socket, ports: number[]): void => {
    const [port, ...rest] = ports;
    if (port === undefined || client.destroyed) {
      client.destroy();
      return;
    }
    const upstream = connect(port, '127.0.0.1');
    track(upstream);
    let connected = false;
    upstream.once('error', () => {
      if (!connected) attach(client, rest);
    });
    upstream.once('connect', () => {
      connected = true;
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream).pipe(client);
      client.resume();
    });
  };
  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    track(client);
    attach(client, targets);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    to(...ports) {
      targets = ports;
      for (const s of open) s.destroy();
    },
    close() {
      for (const s of open) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
