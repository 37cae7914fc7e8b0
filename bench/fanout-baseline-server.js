// @ts-check
/**
 * The bar of the event fan-out bench: a bare `ws` broadcast server. WebSocket clients connect
 * at any path; `POST /broadcast` sends its body, as one text message, to every open client
 * (`client.send(body)` in a loop, as ws's README broadcasts) and answers 204 once it has.
 * `GET /readyz` answers 200. Started as a child process by bench/events-fanout.js:
 *
 *   node bench/fanout-baseline-server.js <port>
 */
import { Buffer } from 'node:buffer';
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node bench/fanout-baseline-server.js <port>\n');
  process.exit(2);
}

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  if (req.method === 'POST' && req.url === '/broadcast') {
    /** @type {Buffer[]} */
    const chunks = [];
    req.on('data', (/** @type {Buffer} */ chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      for (const client of wss.clients) {
        if (client.readyState === client.OPEN) client.send(body, { binary: false });
      }
      res.writeHead(204).end();
    });
    return;
  }
  res.writeHead(req.url === '/readyz' ? 200 : 404).end();
});
server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  for (const client of wss.clients) client.terminate();
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
