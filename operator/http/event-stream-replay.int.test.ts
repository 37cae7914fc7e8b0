/**
 * `follow=false` on the event stream (issue 18, `kubectl maxine events` without `-f`): the
 * replay of the held events (or from `since`), or the snapshot, then the stream closes. Real
 * sockets, a standalone operator (anonymous reads).
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import WebSocket from 'ws';
import { register } from '../../test/helpers/event-stream.js';
import { startOperator } from '../../test/helpers/operator.js';
import type { TestOperator } from '../../test/helpers/operator.js';

let op: TestOperator | undefined;
afterEach(async () => {
  await op?.stop();
  op = undefined;
});

/** The whole SSE body (it ends when the server closes the stream) and its data lines, parsed. */
async function sse(
  query: string,
): Promise<{ body: string; events: { seq: number; type: string }[] }> {
  const res = await fetch(`${op?.url}/api/v1/events?${query}`, {
    headers: { accept: 'text/event-stream' },
    signal: AbortSignal.timeout(10_000),
  });
  expect(res.status).toBe(200);
  const body = await res.text();
  const events = body
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => JSON.parse(l.slice(6)) as { seq: number; type: string });
  return { body, events };
}

describe('the event stream with follow=false', () => {
  it('without since: every held event that matches, then it closes', async () => {
    op = await startOperator();
    register(op, { id: 'web-1' });
    register(op, { id: 'web-2' });
    register(op, { id: 'api-1', service: 'api' });
    const all = await sse('follow=false&types=service_registered');
    expect(all.events.map((e) => e.type)).toEqual([
      'service_registered',
      'service_registered',
      'service_registered',
    ]);
    expect(all.body.trimEnd().endsWith(': closed 1000 replay done')).toBe(true);
    const web = await sse('follow=false&services=shop/web&types=service_registered');
    expect(web.events).toHaveLength(2);
  });

  it('with since: what follows it, then it closes; an empty replay closes at once', async () => {
    op = await startOperator();
    register(op, { id: 'web-1' });
    const first = await sse('follow=false');
    const last = first.events.at(-1)?.seq ?? 0;
    register(op, { id: 'web-2' });
    const after = await sse(`follow=false&since=${last}`);
    expect(after.events.map((e) => e.seq)).toEqual(after.events.map((_, i) => last + 1 + i));
    expect(after.events.length).toBeGreaterThan(0);
    const none = await sse(`follow=false&since=${after.events.at(-1)?.seq ?? 0}`);
    expect(none.events).toEqual([]);
    expect(none.body).toContain(': closed 1000 replay done');
  });

  it('on a WebSocket: the replay, then close code 1000', async () => {
    op = await startOperator();
    register(op, { id: 'web-1' });
    const ws = new WebSocket(`${op.wsUrl}/api/v1/events?follow=false&types=service_registered`);
    const messages: string[] = [];
    ws.on('message', (m: Buffer) => messages.push(m.toString()));
    const code = await new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
    expect(code).toBe(1000);
    expect(messages.map((m) => (JSON.parse(m) as { type: string }).type)).toEqual([
      'service_registered',
    ]);
  });

  it('without follow=false the stream stays open (as before)', async () => {
    op = await startOperator();
    register(op, { id: 'web-1' });
    const res = await fetch(`${op.url}/api/v1/events?types=service_registered`, {
      headers: { accept: 'text/event-stream' },
    });
    const reader = res.body?.getReader();
    register(op, { id: 'web-2' });
    const chunk = await reader?.read();
    expect(new TextDecoder().decode(chunk?.value)).toContain('service_registered');
    await reader?.cancel();
  });
});
