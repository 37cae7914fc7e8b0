// Register this process's instance, keep it alive, and discover a service (here: itself) from
// a local cache fed by the event stream. Run against a standalone operator (`npm start` in the
// repository): `npx tsx register-and-discover.ts http://127.0.0.1:7710`.
import { ClientError, MaxineClient, tokenFromFile } from '@maxine/client';

const baseUrl = process.argv[2] ?? 'http://127.0.0.1:7710';
const tokenFile = process.env.MAXINE_TOKEN_FILE; // e.g. a projected ServiceAccount token

const client = new MaxineClient({
  baseUrl,
  token: tokenFile === undefined ? process.env.MAXINE_TOKEN : tokenFromFile(tokenFile),
  cache: { services: ['shop/*'] }, // kept locally: discovery of shop/* never leaves the process
});
client.on('error', (err) => console.error(`cache: ${err.code} ${err.message}`));

try {
  const me = await client.register(
    { service: 'web', namespace: 'shop', host: '127.0.0.1', port: 8080, ttlSeconds: 15 },
    { report: () => ({ status: 'passing' }) }, // your health check here
  );
  me.on('reregistered', (i) => console.log(`registered again as ${i.id}`));
  me.on('error', (err) => console.error(`heartbeat: ${err.code} ${err.message}`));
  console.log(
    `registered ${me.id}, heartbeating every ${(me.instance.lease?.ttlSeconds ?? 30) / 3} s`,
  );

  await client.synced();
  const web = await client.discover('shop/web', { strategy: 'round-robin' });
  console.log(
    `discovered ${web.id} at ${web.host}:${web.port} (from the cache: ${client.answersFromCache('shop/web')})`,
  );
} catch (err) {
  if (err instanceof ClientError)
    console.error(`refused: ${err.status} ${err.code}: ${err.message}`);
  else throw err;
} finally {
  await client.close(); // deregisters and closes the stream
}
