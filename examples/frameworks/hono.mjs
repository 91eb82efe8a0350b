// Hono on Node, through @hono/node-server: the fetch-style form. The
// handler returns endpoint.response; the endpoint sees a client leave
// through the body's cancel.
//
//   node examples/frameworks/hono.mjs   (after `npm ci && npm run build`)
//   curl -N http://127.0.0.1:3000/events
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
import { EventEndpoint } from 'native-sse';

const TICK_MS = Number(process.env.TICK_MS ?? 1000);
const app = new Hono();

app.get('/events', (c) => {
  const endpoint = new EventEndpoint(c.req.raw);
  let n = Number(endpoint.lastEventId) || 0; // a reconnecting client resumes
  endpoint.sendEvent('welcome', `resuming after ${n}`);
  const timer = setInterval(() => endpoint.send(`tick ${++n}`, String(n)).catch(() => {}), TICK_MS);
  endpoint.addEventListener('close', () => clearInterval(timer));
  return endpoint.response;
});

serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 3000), hostname: '127.0.0.1' }, (info) => {
  console.log(`Hono example: http://127.0.0.1:${info.port}/events`);
});
