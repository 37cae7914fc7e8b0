/**
 * A real MQTT broker for the tests: Debian's `mosquitto` on free ports of 127.0.0.1, with a
 * generated configuration: a password file (mosquitto_passwd, at test time), an ACL file, a
 * plain listener and a TLS listener whose certificates are generated at test time (openssl;
 * no key is ever committed). Persistence is on, in the test's folder, so a broker stopped with
 * SIGTERM (or SIGKILL, a second after a change: it saves every second) and started again
 * keeps its retained messages and persistent sessions.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface MosquittoOptions {
  /** user → password */
  users: Record<string, string>;
  /** The ACL file's text (mosquitto's `acl_file` format). */
  acl: string;
  /** More lines of mosquitto.conf's global section (e.g. `max_packet_size 65536`). */
  extraConfig?: string[];
}

export interface Mosquitto {
  port: number;
  tlsPort: number;
  url: string;
  tlsUrl: string;
  /** The CA that signed the broker's certificate, and one that did not. */
  caFile: string;
  otherCaFile: string;
  dir: string;
  proc(): ChildProcess | undefined;
  /** Everything the broker logged (its log goes to stdout). */
  output(): string;
  /** Stops the broker (SIGTERM saves its persistence file; SIGKILL does not). */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same ports with the same files. */
  start(): Promise<void>;
  /** Stops it and removes its folder. */
  destroy(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];

async function makeCa(dir: string, name: string): Promise<void> {
  await execFileP('openssl', [
    ...['req', '-x509', '-new', '-nodes', ...EC],
    ...['-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)],
    ...['-days', '1', '-subj', `/CN=maxine-test-${name}`],
    ...['-addext', 'basicConstraints=critical,CA:TRUE'],
    ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  ]);
}

/** A CA, a broker certificate it signed (127.0.0.1, localhost), and an unrelated CA. */
async function makePki(dir: string): Promise<void> {
  await makeCa(dir, 'ca');
  await makeCa(dir, 'other-ca');
  const f = (n: string) => join(dir, n);
  await execFileP('openssl', [
    ...['req', '-new', '-nodes', ...EC, '-keyout', f('broker.key'), '-out', f('broker.csr')],
    ...['-subj', '/CN=localhost'],
  ]);
  await writeFile(
    f('broker.ext'),
    'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n',
  );
  await execFileP('openssl', [
    ...['x509', '-req', '-in', f('broker.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key')],
    ...['-CAcreateserial', '-days', '1', '-sha256', '-extfile', f('broker.ext')],
    ...['-out', f('broker.crt')],
  ]);
}

async function makePasswords(file: string, users: Record<string, string>): Promise<void> {
  let first = true;
  for (const [user, password] of Object.entries(users)) {
    await execFileP('mosquitto_passwd', [...(first ? ['-c'] : []), '-b', file, user, password]);
    first = false;
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startMosquitto(options: MosquittoOptions): Promise<Mosquitto> {
  const dir = await mkdtemp(join(tmpdir(), 'maxine-mosquitto-'));
  await mkdir(join(dir, 'data'));
  await makePki(dir);
  await makePasswords(join(dir, 'passwd'), options.users);
  await writeFile(join(dir, 'acl'), options.acl);
  const port = await freePort();
  const tlsPort = await freePort();
  const conf = [
    `user ${userInfo().username}`,
    'per_listener_settings false',
    'allow_anonymous false',
    `password_file ${join(dir, 'passwd')}`,
    `acl_file ${join(dir, 'acl')}`,
    'persistence true',
    // Saved every second too, so a broker killed with SIGKILL comes back with its sessions.
    'autosave_interval 1',
    `persistence_location ${join(dir, 'data')}/`,
    'log_dest stdout',
    'log_type all',
    ...(options.extraConfig ?? []),
    `listener ${port} 127.0.0.1`,
    `listener ${tlsPort} 127.0.0.1`,
    `cafile ${join(dir, 'ca.crt')}`,
    `certfile ${join(dir, 'broker.crt')}`,
    `keyfile ${join(dir, 'broker.key')}`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'mosquitto.conf'), conf);
  let proc: ChildProcess | undefined;
  let output = '';

  async function start(): Promise<void> {
    const child = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc = child;
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    const deadline = Date.now() + 10_000;
    while (!((await accepts(port)) && (await accepts(tlsPort)))) {
      if (child.exitCode !== null)
        throw new Error(`mosquitto exited (${child.exitCode}):\n${output}`);
      if (Date.now() > deadline) throw new Error(`mosquitto not listening within 10 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  function stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = proc;
    return new Promise<void>((resolve) => {
      if (child === undefined || child.exitCode !== null || child.signalCode !== null)
        return resolve();
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  await start();
  return {
    port,
    tlsPort,
    url: `mqtt://127.0.0.1:${port}`,
    tlsUrl: `mqtts://127.0.0.1:${tlsPort}`,
    caFile: join(dir, 'ca.crt'),
    otherCaFile: join(dir, 'other-ca.crt'),
    dir,
    proc: () => proc,
    output: () => output,
    stop,
    start,
    async destroy() {
      await stop('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
