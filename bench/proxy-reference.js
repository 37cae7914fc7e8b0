// @ts-check
/**
 * The reference of the proxy benchmark: a minimal node:http forwarding proxy (keep-alive agent
 * to one upstream, request and answer piped, hop-by-hop headers not even stripped), i.e. the
 * least a Node proxy can do. Started as a child process by bench/proxy.js:
 *
 *   node bench/proxy-reference.js <port> <upstream port>
 */
import { Agent, createServer, request } from 'node:http';

const port = Number(process.argv[2]);
const upstreamPort = Number(process.argv[3]);
if (!Number.isInteger(port) || !Number.isInteger(upstreamPort)) {
  process.stderr.write('usage: node bench/proxy-reference.js <port> <upstream port>\n');
  process.exit(2);
}
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const upstream = request(
    {
      host: '127.0.0.1',
      port: upstreamPort,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent,
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => {
    res.writeHead(502);
    res.end();
  });
  req.pipe(upstream);
});
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
