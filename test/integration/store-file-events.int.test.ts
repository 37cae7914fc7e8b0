/**
 * The event log kept by the `file` store, with real operator processes: a client resuming
 * with `since=&epoch=` after a restart (or a kill -9 in the middle of a burst) gets a replay
 * of exactly what it missed, identical to what it was sent before; a torn last line is dropped
 * and the epoch continues; a `since` older than the kept log gets a snapshot.
 */
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { spawnListening } from '../helpers/spawn.js';
import { exited, operatorProcesses, subscribe, until } from '../helpers/stream-subscriber.js';
import type { Wire } from '../helpers/stream-subscriber.js';

const { children, sockets, root, resources } = operatorProcesses('maxine-store-events-');

async function startStore(dir: string, extra: string[] = []) {
  const started = await spawnListening(
    [
      ...['--import', 'tsx', 'operator/main.ts', '--port', '0', '--resources', resources],
      ...['--store', 'file', '--store-dir', dir, '--store-fsync', 'interval'],
      ...['--log-level', 'info', '--address-rate-limit', '0', ...extra],
    ],
    { env: { ...process.env } },
  );
  children.push(started.proc);
  return { ...started, base: `http://127.0.0.1:${started.port}` };
}

function register(base: string, n: number): Promise<Response> {
  return fetch(`${base}/api/v1/instances`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      namespace: 'shop',
      service: `svc-${n % 3}`,
      host: `10.0.${Math.floor(n / 250)}.${n % 250}`,
      port: 8080,
      ttlSeconds: 600,
    }),
  });
}

describe('the event log kept by the file store (real processes)', () => {
  it('after a restart, since=&epoch= replays what the client missed (not a snapshot)', async () => {
    const dir = join(root, 'restart');
    const first = await startStore(dir);
    const sub = await subscribe(sockets, first.base);
    for (let n = 0; n < 3; n++) expect((await register(first.base, n)).status).toBe(201);
    await until(() => sub.messages.length === 3, 10_000, 'three events');
    const seen = sub.messages.at(-1)!.parsed.seq;
    sub.ws.close();
    // Missed by the client: two more registrations, then the operator stops.
    for (let n = 3; n < 5; n++) expect((await register(first.base, n)).status).toBe(201);
    first.proc.kill('SIGTERM');
    await exited(first.proc);

    const second = await startStore(dir);
    expect(second.lines.find((l) => String(l.msg).startsWith('event log restored'))).toMatchObject({
      epoch: sub.epoch,
    });
    const resumed = await subscribe(sockets, second.base, `&since=${seen}&epoch=${sub.epoch}`);
    expect(resumed.epoch).toBe(sub.epoch);
    await until(() => resumed.messages.length >= 2, 10_000, 'the replay');
    // (Then the restart's own events: the restored registrations, announced again.)
    const replay = resumed.messages.slice(0, 2).map((m) => m.parsed);
    expect(replay.map((e) => e.type)).toEqual(['service_registered', 'service_registered']);
    expect(replay.map((e) => e.seq)).toEqual([seen + 1, seen + 2]);
    expect(replay.map((e) => (e.instance as { host: string }).host)).toEqual([
      '10.0.0.3',
      '10.0.0.4',
    ]);
    // And the log goes on from there, in the same epoch, without a hole.
    expect((await register(second.base, 5)).status).toBe(201);
    const isNew = (m: { parsed: Wire }): boolean =>
      (m.parsed.instance as { host: string }).host === '10.0.0.5';
    await until(() => resumed.messages.some(isNew), 10_000, 'a new event');
    const seqs = resumed.messages.map((m) => m.parsed.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
  }, 60_000);

  it('kill -9 in the middle of a burst: every event a client was sent replays byte for byte, in the same epoch', async () => {
    const dir = join(root, 'kill9');
    const first = await startStore(dir);
    const sub = await subscribe(sockets, first.base);
    let sent = 0;
    let killed = false;
    const worker = async (): Promise<void> => {
      while (!killed && sent < 3000) {
        const n = sent++;
        await register(first.base, n).catch(() => undefined);
        if (sub.messages.length >= 150 && !killed) {
          killed = true;
          first.proc.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, () => worker()));
    await exited(first.proc);
    expect(first.proc.signalCode).toBe('SIGKILL');
    // Whatever was still in flight on the socket has arrived or never will.
    await new Promise((r) => setTimeout(r, 200));
    const before = sub.messages.filter((m) => m.parsed.type === 'service_registered');
    expect(before.length).toBeGreaterThanOrEqual(150);

    const second = await startStore(dir);
    const from = before[0]!.parsed.seq - 1;
    const resumed = await subscribe(sockets, second.base, `&since=${from}&epoch=${sub.epoch}`);
    await until(() => resumed.messages.length >= before.length, 10_000, 'the replay');
    expect(resumed.messages.some((m) => m.parsed.type.startsWith('resync'))).toBe(false);
    expect(resumed.messages.slice(0, before.length).map((m) => m.raw)).toEqual(
      before.map((m) => m.raw),
    );
  }, 120_000);

  it('drops a torn last line of events.jsonl with a warning and continues the epoch', async () => {
    const dir = join(root, 'torn');
    const first = await startStore(dir);
    const sub = await subscribe(sockets, first.base);
    for (let n = 0; n < 2; n++) expect((await register(first.base, n)).status).toBe(201);
    await until(() => sub.messages.length === 2);
    first.proc.kill('SIGKILL');
    await exited(first.proc);
    const file = join(dir, 'events.jsonl');
    const size = (await readFile(file)).length;
    await appendFile(file, '0badc0de {"seq":99,"type":"service_regis');

    const second = await startStore(dir);
    expect(second.lines.find((l) => l.level === 'warn' && l.file === file)).toMatchObject({
      offset: size,
      reason: 'incomplete last record',
    });
    const seen = sub.messages[0]!.parsed.seq;
    const resumed = await subscribe(sockets, second.base, `&since=${seen}&epoch=${sub.epoch}`);
    await until(() => resumed.messages.length >= 1);
    expect(resumed.messages[0]!.raw).toBe(sub.messages[1]!.raw);
    // The torn bytes are gone: the next events follow the valid ones.
    expect((await register(second.base, 7)).status).toBe(201);
    const isNew = (m: { parsed: Wire }): boolean =>
      (m.parsed.instance as { host: string }).host === '10.0.0.7';
    await until(() => resumed.messages.some(isNew));
    expect(resumed.messages.find(isNew)!.parsed.seq).toBeGreaterThan(sub.messages[1]!.parsed.seq);
    expect((await readFile(file, 'utf8')).includes('service_regis\n')).toBe(false);
  }, 60_000);

  it('a since older than the kept (bounded) log gets a snapshot; the file stays bounded', async () => {
    const dir = join(root, 'bounded');
    const first = await startStore(dir, ['--event-log-size', '16']);
    const sub = await subscribe(sockets, first.base);
    // Each registration deregistered at once: nothing is restored (and re-announced) later.
    for (let n = 0; n < 60; n++) {
      const res = await register(first.base, n);
      const { instance } = (await res.json()) as { instance: { id: string } };
      const gone = await fetch(`${first.base}/api/v1/instances/${instance.id}`, {
        method: 'DELETE',
      });
      expect(gone.status).toBe(204);
    }
    await until(() => sub.messages.length === 60, 10_000, `60 events (${sub.messages.length})`);
    first.proc.kill('SIGTERM');
    await exited(first.proc);
    // 240 events went through a log of 16: the file holds at most twice that.
    const lines = (await readFile(join(dir, 'events.jsonl'), 'utf8')).split('\n').length - 2;
    expect(first.lines.filter((l) => l.level === 'error')).toEqual([]);
    expect(lines).toBeLessThanOrEqual(2 * 16);

    const second = await startStore(dir, ['--event-log-size', '16']);
    const early = sub.messages[2]!.parsed.seq;
    const old = await subscribe(sockets, second.base, `&since=${early}&epoch=${sub.epoch}`);
    await until(() => old.messages.some((m) => m.parsed.type === 'resync_end'));
    expect(old.messages[0]!.parsed.type).toBe('resync_begin');
    // The last 16 events: each registration is 4 (service created, registered, deregistered,
    // service deleted), so since= the 58th's predecessor replays the last two.
    const recent = sub.messages[57]!.parsed.seq;
    const replay = await subscribe(sockets, second.base, `&since=${recent}&epoch=${sub.epoch}`);
    await until(() => replay.messages.length >= 2);
    expect(replay.messages.map((m) => m.raw)).toEqual(sub.messages.slice(58).map((m) => m.raw));
  }, 60_000);
});
