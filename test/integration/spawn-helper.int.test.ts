/**
 * The shared "spawn and read the port from the listening line" helper (test/helpers/spawn.js),
 * used by the integration, end-to-end and benchmark processes, against real child processes.
 */
import { describe, expect, it } from '@jest/globals';
import { isListeningLine, spawnListening } from '../helpers/spawn.js';

/** `node -e <script>` */
const node = (script: string) => ['-e', script];

describe('spawnListening', () => {
  it('resolves with the port of the first JSON listening line, on stdout or stderr, and keeps collecting lines', async () => {
    const started = await spawnListening(
      node(`
        console.log('not json');
        console.log(JSON.stringify({ msg: 'starting', port: 1 }));
        console.error(JSON.stringify({ msg: 'maxine sidecar listening', port: 4321 }));
        setTimeout(() => console.log(JSON.stringify({ msg: 'later' })), 50);
        setTimeout(() => {}, 2000);
      `),
    );
    try {
      expect(started.port).toBe(4321);
      await new Promise((r) => setTimeout(r, 300));
      expect(started.lines).toEqual(
        expect.arrayContaining([
          { unparsed: 'not json' },
          { msg: 'starting', port: 1 },
          { msg: 'later' },
        ]),
      );
      expect(started.output()).toContain('not json');
    } finally {
      started.proc.kill('SIGKILL');
    }
  });

  it('rejects with the output when the process exits before listening', async () => {
    await expect(
      spawnListening(node(`console.log('boom: bad flag'); process.exit(3)`)),
    ).rejects.toThrow(/exited \(3\) before listening[\s\S]*boom: bad flag/);
  });

  it('rejects and kills the process when no listening line comes in time', async () => {
    const pids: number[] = [];
    await expect(
      spawnListening(node(`console.log(process.pid); setInterval(() => {}, 1000)`), {
        timeoutMs: 500,
      }).catch((err: Error) => {
        pids.push(Number(/output:\n(\d+)/.exec(err.message)?.[1]));
        throw err;
      }),
    ).rejects.toThrow(/no listening line within 500 ms/);
    await new Promise((r) => setTimeout(r, 100));
    expect(() => process.kill(pids[0]!, 0)).toThrow();
  });

  it.each([
    [{ msg: 'maxine operator listening (standalone mode)', port: 7710 }, true],
    [{ msg: 'maxine sidecar listening', port: 7711 }, true],
    [{ msg: 'maxine operator listening (standalone mode)' }, false],
    [{ msg: 'listening', port: '7710' }, false],
    [{ msg: 'started', port: 7710 }, false],
    [{ port: 7710 }, false],
  ])('isListeningLine(%j) = %s', (line, expected) => {
    expect(isListeningLine(line)).toBe(expected);
  });
});
