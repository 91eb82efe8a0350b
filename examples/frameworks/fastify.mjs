// Fastify 5: reply.hijack() tells Fastify the handler writes the response
// itself; then pass request.raw and reply.raw.
//
//   node examples/frameworks/fastify.mjs   (after `npm ci && npm run build`)
//   curl -N http://127.0.0.1:3000/events
import Fastify from 'fastify';
import { EventEndpoint } from 'native-sse';

const TICK_MS = Number(process.env.TICK_MS ?? 1000);
const app = Fastify();

app.get('/events', (request, reply) => {
  reply.hijack();
  const endpoint = new EventEndpoint(request.raw, reply.raw);
  let n = Number(endpoint.lastEventId) || 0; // a reconnecting client resumes
  endpoint.sendEvent('welcome', `resuming after ${n}`);
  const timer = setInterval(() => endpoint.send(`tick ${++n}`, String(n)).catch(() => {}), TICK_MS);
  endpoint.addEventListener('close', () => clearInterval(timer));
});

await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' });
console.log(`Fastify example: http://127.0.0.1:${app.server.address().port}/events`);
