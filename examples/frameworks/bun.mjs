// Bun.serve: the fetch-style form. Bun drops a request idle for 10 s
// (idleTimeout); under Bun the default keepAlive is 5 s, so an idle
// stream stays open without touching the server's settings.
//
//   bun examples/frameworks/bun.mjs   (after `npm ci && npm run build`)
//   curl -N http://127.0.0.1:3000/events
import { EventEndpoint } from 'native-sse';

const TICK_MS = Number(process.env.TICK_MS ?? 1000);

const server = Bun.serve({
  port: Number(process.env.PORT ?? 3000),
  hostname: '127.0.0.1',
  fetch(request) {
    if (new URL(request.url).pathname !== '/events') return new Response('Not found', { status: 404 });
    const endpoint = new EventEndpoint(request);
    let n = Number(endpoint.lastEventId) || 0; // a reconnecting client resumes
    endpoint.sendEvent('welcome', `resuming after ${n}`);
    const timer = setInterval(() => endpoint.send(`tick ${++n}`, String(n)).catch(() => {}), TICK_MS);
    endpoint.addEventListener('close', () => clearInterval(timer));
    return endpoint.response;
  },
});
console.log(`Bun example: http://127.0.0.1:${server.port}/events`);
