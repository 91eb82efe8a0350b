// Koa ends the response after the handler returns unless told not to: the
// endpoint says so (its close reason, and one process warning) instead of
// reporting a client that left; with ctx.respond = false it streams.
import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import Koa from 'koa';
import { EventEndpoint } from 'native-sse';
import { until, parseEventStream } from './helpers.mjs';

const warnings = [];
process.on('warning', (w) => warnings.push(w));

async function koaApp(t, respond) {
  const closes = [];
  const endpoints = [];
  const app = new Koa();
  app.use((ctx) => {
    if (!respond) ctx.respond = false;
    const endpoint = new EventEndpoint(ctx.req, ctx.res, { keepAlive: 0 });
    endpoint.addEventListener('close', (e) => closes.push(e.reason));
    endpoints.push(endpoint);
    void endpoint.send('hello');
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  let body = '';
  const request = http.get({ port: server.address().port, path: '/' }, (res) => res.on('data', (d) => (body += d)));
  request.on('error', () => {});
  t.after(() => request.destroy());
  return { closes, endpoints, body: () => body };
}

test('Koa without ctx.respond = false: the close reason and a warning say the response was ended by someone else', async (t) => {
  const { closes } = await koaApp(t, true);
  await until(() => closes.length === 1, 5000, 'the close');
  assert.deepEqual(closes, ['the response was ended by someone else']);
  const warning = warnings.find((w) => w.code === 'ERR_SSE_ENDED_BEHIND');
  assert.ok(warning, 'a warning says so');
  assert.match(warning.detail, /ctx\.respond = false/);
});

test('Koa with ctx.respond = false streams', async (t) => {
  const { closes, endpoints, body } = await koaApp(t, false);
  await until(() => body().includes('data: hello'), 5000, 'the event');
  await endpoints[0].send('second');
  await until(() => body().includes('data: second'), 5000, 'the second event');
  assert.deepEqual(
    parseEventStream(body()).events.map((e) => e.data),
    ['hello', 'second'],
  );
  assert.deepEqual(closes, []);
});
