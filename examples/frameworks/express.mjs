// Express 5: pass req and res. The second route sits behind the
// `compression` middleware, which buffers what is written until
// `res.flush()`: the endpoint flushes after every write, so each event
// leaves compressed, at once.
//
//   node examples/frameworks/express.mjs   (after `npm ci && npm run build`)
//   curl -N http://127.0.0.1:3000/events
//   curl -N --compressed http://127.0.0.1:3000/compressed/events
import express from 'express';
import compression from 'compression';
import { EventEndpoint } from 'native-sse';

const TICK_MS = Number(process.env.TICK_MS ?? 1000);

function events(req, res) {
  const endpoint = new EventEndpoint(req, res);
  let n = Number(endpoint.lastEventId) || 0; // a reconnecting client resumes
  endpoint.sendEvent('welcome', `resuming after ${n}`);
  const timer = setInterval(() => endpoint.send(`tick ${++n}`, String(n)).catch(() => {}), TICK_MS);
  endpoint.addEventListener('close', () => clearInterval(timer));
}

const app = express();
app.get('/events', events);
app.get('/compressed/events', compression(), events);

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`Express example: http://127.0.0.1:${server.address().port}/events`);
});
