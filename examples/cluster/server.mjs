// node:cluster with two workers sharing one Redis-backed Channel: a
// broadcast made by either worker reaches the clients of both, and a client
// that reconnects to the other worker resumes where it stopped.
//
//   redis-server &                        (a Redis on localhost:6379)
//   node examples/cluster/server.mjs      (after `npm ci && npm run build`)
//
//   curl -N http://127.0.0.1:3004/events                 (watch)
//   curl -X POST 'http://127.0.0.1:3004/say?text=hello'  (broadcast)
import cluster from 'node:cluster';
import http from 'node:http';
import { EventEndpoint, Channel } from 'native-sse';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PORT = Number(process.env.PORT ?? 3004);

if (cluster.isPrimary) {
  const WORKERS = 2;
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  cluster.on('exit', (worker, code) => console.log(`worker ${worker.process.pid} exited (${code})`));
  // Announced once every worker listens (Deno's node:cluster hands
  // connections to workers that do not listen yet).
  let listening = 0;
  cluster.on('listening', (_worker, address) => {
    if (++listening !== WORKERS) return;
    console.log(`cluster example: http://127.0.0.1:${address.port}/events (${WORKERS} workers, Redis at ${REDIS_URL})`);
  });
} else {
  const news = new Channel({ redis: { url: REDIS_URL, stream: 'native-sse:cluster-example', maxLen: 1000 } });
  try {
    await news.ready;
  } catch (err) {
    console.error(`worker ${process.pid}: ${err.message}`);
    process.exit(1);
  }

  http
    .createServer((req, res) => {
      const url = new URL(req.url, 'http://localhost');
      if (url.pathname === '/events') {
        const events = new EventEndpoint(req, res, { reconnectionTime: 1000 });
        events.sendEvent('hello', `served by worker ${process.pid}`);
        // Replays what the client missed (read from the stream), then live.
        news.subscribe(events).catch((err) => events.sendEvent('error', err.message));
        return;
      }
      if (url.pathname === '/say' && req.method === 'POST') {
        news.broadcast(`${url.searchParams.get('text') ?? ''} (from worker ${process.pid})`).then(
          (id) => res.writeHead(200).end(`${id}\n`),
          (err) => res.writeHead(503).end(`${err.message}\n`),
        );
        return;
      }
      res.writeHead(404).end();
    })
    .listen(PORT, '127.0.0.1');
}
