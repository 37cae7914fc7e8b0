// @ts-check
/**
 * The bar of the benchmark: a bare `node:http` server answering every request with one fixed
 * JSON body (the bytes of a real discovery answer, handed over in base64 as the second
 * argument). Requests with a body (PUT/POST) are read to the end first, as a write endpoint
 * must. Started as a child process by bench/run.js:
 *
 *   node bench/baseline-server.js <port> <base64 body>
 */
import { Buffer } from 'node:buffer';
import { createRequire } from 'node:module';

// Required, not imported: on Node 24+ an ESM import of node:http loads undici (~7 MB private),
// which a bare server does not use (common/node-http.ts; decision 0027).
/** @type {typeof import('node:http')} */
const { createServer } = createRequire(import.meta.url)('node:http');

const port = Number(process.argv[2]);
const body = Buffer.from(process.argv[3] ?? '', 'base64');
if (!Number.isInteger(port) || port <= 0 || body.length === 0) {
  process.stderr.write('usage: node bench/baseline-server.js <port> <base64 body>\n');
  process.exit(2);
}
const headers = { 'content-type': 'application/json', 'content-length': body.length };

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const answer = () => {
    res.writeHead(200, headers);
    res.end(body);
  };
  if (req.method === 'GET' || req.method === 'HEAD') {
    answer();
    return;
  }
  req.on('data', () => {});
  req.on('end', answer);
});
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
