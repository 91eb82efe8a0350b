// Koa 3: Koa ends the response once the middleware returns, unless
// ctx.respond = false hands it over; then pass ctx.req and ctx.res.
//
//   node examples/frameworks/koa.mjs   (after `npm ci && npm run build`)
//   curl -N http://127.0.0.1:3000/events
import Koa from 'koa';
import { EventEndpoint } from 'native-sse';

const TICK_MS = Number(process.env.TICK_MS ?? 1000);
const app = new Koa();

app.use((ctx, next) => {
  if (ctx.path !== '/events') return next();
  ctx.respond = false;
  const endpoint = new EventEndpoint(ctx.req, ctx.res);
  let n = Number(endpoint.lastEventId) || 0; // a reconnecting client resumes
  endpoint.sendEvent('welcome', `resuming after ${n}`);
  const timer = setInterval(() => endpoint.send(`tick ${++n}`, String(n)).catch(() => {}), TICK_MS);
  endpoint.addEventListener('close', () => clearInterval(timer));
});

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`Koa example: http://127.0.0.1:${server.address().port}/events`);
});
