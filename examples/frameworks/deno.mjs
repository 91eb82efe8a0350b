// Deno.serve: the fetch-style form, with native-sse installed from npm
// (node_modules, as `npm install native-sse` leaves it). The least it
// needs: --allow-ffi (an N-API addon), reading the project's folder (the
// package) and /usr/bin/ldd (the loader tells glibc from musl with it),
// and its environment variables (NAPI_RS_*, NATIVE_SSE_*):
//
//   deno run --allow-net=127.0.0.1 --allow-ffi --allow-read=.,/usr/bin/ldd \
//     --allow-env=NAPI_RS_*,NATIVE_SSE_*,PORT,TICK_MS examples/frameworks/deno.mjs
//   curl -N http://127.0.0.1:3000/events
import { EventEndpoint } from 'native-sse';

const TICK_MS = Number(Deno.env.get('TICK_MS') ?? 1000);

Deno.serve(
  {
    port: Number(Deno.env.get('PORT') ?? 3000),
    hostname: '127.0.0.1',
    onListen: ({ port }) => console.log(`Deno example: http://127.0.0.1:${port}/events`),
  },
  (request) => {
    if (new URL(request.url).pathname !== '/events') return new Response('Not found', { status: 404 });
    const endpoint = new EventEndpoint(request);
    let n = Number(endpoint.lastEventId) || 0; // a reconnecting client resumes
    endpoint.sendEvent('welcome', `resuming after ${n}`);
    const timer = setInterval(() => endpoint.send(`tick ${++n}`, String(n)).catch(() => {}), TICK_MS);
    endpoint.addEventListener('close', () => clearInterval(timer));
    return endpoint.response;
  },
);
