// One SSE library's server, in a process of its own, driven by compare.mjs:
// the same two probes through each library's own API, as its documentation
// shows it. GET /bad sends events that a careless encoder lets corrupt the
// stream; GET /slow sends 1 KiB events, each awaited (where the library
// gives a promise), to a client that never reads.
import http from 'node:http';

const library = process.argv[2];
const KiB = 'k'.repeat(1024 - 8);
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** What each library gives a handler: send({ data, event, id }) and close(). */
async function serve(handler) {
  switch (library) {
    case 'native-sse': {
      const { EventEndpoint } = await import('native-sse');
      return http.createServer((req, res) => {
        const endpoint = new EventEndpoint(req, res);
        handler(req.url, {
          send: (m) => (m.event ? endpoint.sendEvent(m.event, m.data, m.id) : endpoint.send(m.data, m.id)),
          close: () => endpoint.close(),
          closed: () => endpoint.closed,
        });
      });
    }
    case 'better-sse': {
      const { createSession } = await import('better-sse');
      return http.createServer(async (req, res) => {
        const session = await createSession(req, res);
        handler(req.url, {
          send: (m) => session.push(m.data, m.event, m.id),
          close: () => res.end(),
          closed: () => !session.isConnected,
        });
      });
    }
    case 'hono': {
      const { Hono } = await import('hono');
      const { streamSSE } = await import('hono/streaming');
      const { createAdaptorServer } = await import('@hono/node-server');
      const app = new Hono();
      app.get('*', (c) =>
        streamSSE(c, async (stream) => {
          let closed = false;
          let done;
          const finished = new Promise((resolve) => (done = resolve));
          stream.onAbort(() => {
            closed = true;
            done();
          });
          handler(new URL(c.req.url).pathname, {
            send: (m) => stream.writeSSE({ data: m.data, event: m.event, id: m.id }),
            close: () => {
              closed = true;
              done();
            },
            closed: () => closed,
          });
          await finished;
        }),
      );
      return createAdaptorServer({ fetch: app.fetch });
    }
    case '@fastify/sse': {
      const { default: Fastify } = await import('fastify');
      const { default: sse } = await import('@fastify/sse');
      const fastify = Fastify();
      await fastify.register(sse);
      fastify.get('/*', { sse: true }, async (request, reply) => {
        reply.sse.keepAlive();
        handler(request.url, {
          send: (m) => reply.sse.send({ data: m.data, event: m.event, id: m.id }),
          close: () => reply.sse.close(),
          closed: () => !reply.sse.isConnected,
        });
      });
      await fastify.ready();
      return fastify.server;
    }
    default:
      throw new Error(`unknown library ${library}`);
  }
}

/** Runs `attempt`, sync or async; says whether it refused (threw or rejected). */
async function refused(attempt) {
  try {
    await attempt();
    return false;
  } catch {
    return true;
  }
}

const results = {};

const server = await serve(async (path, stream) => {
  if (path === '/bad') {
    results.bad = {
      eventLF: await refused(() => stream.send({ event: 'a\nevent: injected', data: 'x' })),
      idLF: await refused(() => stream.send({ id: '1\ndata: injected', data: 'x' })),
      dataCR: await refused(() => stream.send({ data: 'a\rb' })),
      object: await refused(() => stream.send({ data: { a: 1 } })),
    };
    await stream.send({ data: 'end' });
    await nextTurn();
    stream.close();
    return;
  }
  // /slow: for up to 3 s, or until a send has been held back for 1 s.
  const start = Date.now();
  const rss = process.memoryUsage.rss();
  let peak = rss;
  let sent = 0;
  let held = false;
  while (Date.now() - start < 3000 && sent < 256 * 1024 * 1024) {
    const outcome = await Promise.race([
      Promise.resolve(stream.send({ data: KiB })).then(
        () => 'sent',
        () => 'failed',
      ),
      new Promise((resolve) => setTimeout(resolve, 1000, 'held')),
    ]);
    if (outcome === 'held') {
      held = true;
      break;
    }
    if (outcome === 'failed') break;
    sent += 1024;
    if (sent % (256 * 1024) === 0) {
      peak = Math.max(peak, process.memoryUsage.rss());
      await nextTurn();
    }
  }
  peak = Math.max(peak, process.memoryUsage.rss());
  // Then a loop that does not wait: 1,000 sends a turn, for 2 s or until
  // 256 MiB have been handed over or the library ends the stream.
  const before = process.memoryUsage.rss();
  let peakAfter = before;
  let fired = 0;
  const started = Date.now();
  while (Date.now() - started < 2000 && fired < 256 * 1024 * 1024 && !stream.closed()) {
    for (let i = 0; i < 1000; i++) {
      try {
        const done = stream.send({ data: KiB });
        if (typeof done?.catch === 'function') done.catch(() => {});
      } catch {}
    }
    fired += 1000 * 1024;
    peakAfter = Math.max(peakAfter, process.memoryUsage.rss());
    await nextTurn();
  }
  results.slow = {
    acceptedMiB: sent / (1024 * 1024),
    held,
    rssGrowthMiB: (peak - rss) / (1024 * 1024),
    firedMiB: fired / (1024 * 1024),
    firedRssGrowthMiB: (peakAfter - before) / (1024 * 1024),
    cutOff: stream.closed(),
  };
});
server.listen(0, '127.0.0.1', () => process.send({ type: 'port', port: server.address().port }));
process.on('message', (message) => {
  if (message.type === 'report') process.send({ type: 'report', results });
  if (message.type === 'exit') process.exit(0);
});
