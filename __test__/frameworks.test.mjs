// Real frameworks and middleware in front of an endpoint: Express with the
// `compression` package, which buffers until `res.flush()`.
import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import zlib from 'node:zlib';
import { once } from 'node:events';
import express from 'express';
import compression from 'compression';
import { EventEndpoint, diagnostics } from 'native-sse';
import { until, parseEventStream } from './helpers.mjs';

for (const encoding of ['gzip', 'br']) {
  test(`Express with compression (${encoding}): every event reaches the client as it is sent`, async (t) => {
    const endpoints = [];
    const app = express();
    app.use(compression());
    app.get('/events', (req, res) => endpoints.push(new EventEndpoint(req, res, { keepAlive: 0 })));
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => {
      server.closeAllConnections();
      server.close();
    });
    let text = '';
    let headers = null;
    const request = http.get(
      { port: server.address().port, path: '/events', headers: { 'accept-encoding': encoding } },
      (res) => {
        headers = res.headers;
        const decoder = encoding === 'gzip' ? zlib.createGunzip() : zlib.createBrotliDecompress();
        res.pipe(decoder);
        decoder.on('data', (data) => (text += data));
      },
    );
    request.on('error', () => {});
    t.after(() => request.destroy());
    await until(() => headers !== null && text.includes(': ok'), 5000, 'the headers and the opening');
    assert.equal(headers['content-encoding'], encoding);
    const endpoint = endpoints[0];
    assert.equal(diagnostics().directSockets, 0, 'a wrapped response stays on the JavaScript path');
    for (let i = 0; i < 3; i++) {
      await endpoint.send(`event ${i}`);
      // Each arrives on its own, not when the compressor's buffer fills.
      await until(() => text.includes(`data: event ${i}\n\n`), 2000, `event ${i}`);
    }
    endpoint.close();
    assert.deepEqual(
      parseEventStream(text).events.map((e) => e.data),
      ['event 0', 'event 1', 'event 2'],
    );
  });
}

test('Fastify, with reply.hijack(): events reach the client, on the direct path', async (t) => {
  const { default: Fastify } = await import('fastify');
  const app = Fastify();
  const endpoints = [];
  app.get('/events', (request, reply) => {
    reply.hijack(); // Fastify leaves the response to the endpoint
    endpoints.push(new EventEndpoint(request.raw, reply.raw, { keepAlive: 0 }));
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => app.close());
  let text = '';
  const request = http.get({ port: app.server.address().port, path: '/events' }, (res) =>
    res.on('data', (d) => (text += d)),
  );
  request.on('error', () => {});
  t.after(() => request.destroy());
  await until(() => endpoints.length === 1 && text.includes(': ok'), 5000, 'the stream');
  for (let i = 0; i < 3; i++) await endpoints[0].send(`event ${i}`);
  await until(() => text.includes('data: event 2'), 5000, 'the events');
  assert.equal(diagnostics().directSockets, 1);
  assert.deepEqual(
    parseEventStream(text).events.map((e) => e.data),
    ['event 0', 'event 1', 'event 2'],
  );
  endpoints[0].close();
});
