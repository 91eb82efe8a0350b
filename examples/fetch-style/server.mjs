// A fetch-style handler (Request → Response), the shape Deno, Bun, Cloudflare
// Workers and Hono use. On Node it is served here by @hono/node-server.
//
//   node examples/fetch-style/server.mjs       (after `npm ci && npm run build`)
import { pathToFileURL } from 'node:url';
import { serve } from '@hono/node-server';
import { EventEndpoint } from 'native-sse';

const app = {
  fetch(request) {
    const url = new URL(request.url);
    if (url.pathname !== '/events') {
      return new Response(`Try: curl -N http://127.0.0.1:${url.port}/events\n`, {
        headers: { 'Content-Type': 'text/plain' },
      });
    }

    const events = new EventEndpoint(request, { reconnectionTime: 2000 });
    let n = Number(events.lastEventId) || 0;

    events.sendEvent('welcome', `resuming after event ${n}`);
    const timer = setInterval(() => {
      n++;
      // Awaiting send() is what keeps memory bounded if this client is slow.
      events.send(`event number ${n}\nsent at ${new Date().toISOString()}`, String(n)).catch(() => {});
      if (n % 10 === 0) events.close(); // the client reconnects and resumes from n
    }, 1000);
    events.addEventListener('close', (ev) => {
      clearInterval(timer);
      console.log(`stream closed: ${ev.reason}`);
    });

    return events.response;
  },
};

export default app;

// Run directly, serve it on node:http.
if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.PORT ?? 3001);
  serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, (info) => {
    console.log(`fetch-style example: http://127.0.0.1:${info.port}/events`);
  });
}
