// Follow a namespace's events, typed: `npx tsx watch.ts http://127.0.0.1:7710 'shop/*'`.
// The stream resumes where it stopped after a drop (Last-Event-ID), or resyncs from a snapshot.
import { MaxineClient } from '@maxine/client';
import type { MaxineEvent } from '@maxine/client';

const [baseUrl = 'http://127.0.0.1:7710', services = '*/*'] = process.argv.slice(2);
const client = new MaxineClient({ baseUrl, token: process.env.MAXINE_TOKEN });
const stream = client.events({ services: [services], snapshot: true });
stream.on('error', (err) => console.error(`stream: ${err.code} ${err.message} (retrying)`));
process.once('SIGINT', () => void stream.close());

function describe(event: MaxineEvent): string {
  switch (event.type) {
    case 'service_registered':
    case 'service_deregistered':
      return `${event.instance.id} ${event.instance.host}:${event.instance.port}`;
    case 'service_healthy':
    case 'service_unhealthy':
      return `${event.instance.id} ${event.data.previous} -> ${event.data.status}`;
    case 'resync_end':
      return `snapshot: ${event.data.services} services, ${event.data.instances} instances`;
    case 'config_changed':
      return `config version ${event.data.version ?? '?'}`;
    default:
      return '';
  }
}

for await (const event of stream) {
  if (event.type === 'resync_begin' || event.type === 'resync_chunk') continue;
  const service =
    event.service === undefined ? '' : `${event.service.namespace}/${event.service.name}`;
  console.log(`${event.seq} ${event.type} ${service} ${describe(event)}`);
}
