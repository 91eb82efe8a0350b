// The fetch-style form: new EventEndpoint(request) → endpoint.response.
import test from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createAdaptorServer } from '@hono/node-server';
import { EventSource } from 'eventsource';
import { EventEndpoint } from 'native-sse';
import { until, tick, parseEventStream } from './helpers.mjs';

/** Serves a fetch handler on node:http through @hono/node-server. */
async function serveFetch(t, handler) {
  const server = createAdaptorServer({ fetch: handler });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${server.address().port}/`;
}

const decoder = new TextDecoder();

/** Reads a body stream into text until `predicate(text)` holds. */
async function readUntil(reader, predicate, state = { text: '' }) {
  const deadline = performance.now() + 5000;
  while (!predicate(state.text)) {
    if (performance.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(state.text)}`);
    const { done, value } = await reader.read();
    if (done) break;
    state.text += decoder.decode(value, { stream: true });
  }
  return state.text;
}

test('endpoint.response is an event-stream Response whose body carries the frames', async () => {
  const endpoint = new EventEndpoint(new Request('http://localhost/events'), { reconnectionTime: 1000 });
  const { response } = endpoint;
  assert.ok(response instanceof Response);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'text/event-stream');
  assert.equal(response.headers.get('cache-control'), 'no-cache');
  assert.equal(response.headers.get('x-accel-buffering'), 'no');
  assert.equal(response.headers.get('connection'), null, 'left to the server');
  endpoint.send('hello', '1');
  endpoint.sendEvent('tick', 'a\nb');
  const reader = response.body.getReader();
  const text = await readUntil(reader, (t) => t.includes('data: b\n\n'));
  assert.equal(text, ': ok\nretry: 1000\n\nid: 1\ndata: hello\n\nevent: tick\ndata: a\ndata: b\n\n');
  endpoint.close();
  assert.deepEqual(await reader.read(), { done: true, value: undefined });
});

test('an EventSource reads a fetch-style endpoint', async (t) => {
  const url = await serveFetch(t, (request) => {
    const events = new EventEndpoint(request);
    events.dispatchEvent(new MessageEvent('my-event', { data: 'Hello, World!', lastEventId: '1' }));
    events.send('plain message', '2');
    events.sendEvent('tick', 'line one\nline two');
    return events.response;
  });
  const es = new EventSource(url);
  t.after(() => es.close());
  const got = [];
  es.addEventListener('my-event', (e) => got.push(['my-event', e.data, e.lastEventId]));
  es.addEventListener('message', (e) => got.push(['message', e.data, e.lastEventId]));
  es.addEventListener('tick', (e) => got.push(['tick', e.data]));
  await until(() => got.length === 3);
  assert.deepEqual(got, [
    ['my-event', 'Hello, World!', '1'],
    ['message', 'plain message', '2'],
    ['tick', 'line one\nline two'],
  ]);
});

test('fetch reads the body stream of a fetch-style server; leaving closes the endpoint', async (t) => {
  let endpoint;
  const url = await serveFetch(t, (request) => {
    endpoint = new EventEndpoint(request);
    let n = 0;
    const timer = setInterval(() => endpoint.send(`n=${++n}`, String(n)), 5);
    endpoint.addEventListener('close', () => clearInterval(timer));
    return endpoint.response;
  });
  const controller = new AbortController();
  const response = await fetch(url, { signal: controller.signal });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'text/event-stream');
  const reader = response.body.getReader();
  const text = await readUntil(reader, (t) => t.includes('data: n=5\n\n'));
  const { events } = parseEventStream(text);
  assert.deepEqual(
    events.slice(0, 5).map((e) => e.data),
    ['n=1', 'n=2', 'n=3', 'n=4', 'n=5'],
  );
  const closes = [];
  endpoint.addEventListener('close', (ev) => closes.push(ev.reason));
  controller.abort();
  await until(() => endpoint.closed, 5000, 'the endpoint to close');
  await tick(20);
  assert.deepEqual(closes, ['client disconnected']);
});

test('the body is pulled: send() waits while the consumer does not read', async () => {
  const highWaterMark = 8 * 1024;
  const endpoint = new EventEndpoint(new Request('http://localhost/'), { highWaterMark, keepAlive: 0 });
  const frame = 'z'.repeat(1000);
  let sent = 0;
  let stalled = false;
  while (sent < 10_000) {
    const settled = await Promise.race([
      endpoint.send(frame, String(sent)).then(() => true),
      tick(100).then(() => false),
    ]);
    if (!settled) {
      stalled = true;
      break;
    }
    sent++;
  }
  assert.ok(stalled, 'send() waited for a reader');
  assert.ok(sent < (2 * highWaterMark) / 1000 + 2, `${sent} frames accepted before waiting`);
  assert.ok(endpoint.bufferedAmount <= 2 * highWaterMark + 2000, `bufferedAmount ${endpoint.bufferedAmount}`);

  // Reading drains it, in order, and the producer goes on.
  const reader = endpoint.response.body.getReader();
  const state = { text: '' };
  await readUntil(reader, (t) => t.includes(`id: ${sent}\n`), state);
  await endpoint.send('after', 'last');
  await readUntil(reader, (t) => t.includes('data: after\n\n'), state);
  const ids = parseEventStream(state.text).events.map((e) => e.lastEventId);
  assert.deepEqual(ids, [...Array.from({ length: sent + 1 }, (_, i) => String(i)), 'last']);
  endpoint.close();
});

test('cancelling the body closes the endpoint with one close event', async () => {
  const endpoint = new EventEndpoint(new Request('http://localhost/'));
  const closes = [];
  endpoint.addEventListener('close', (ev) => closes.push(ev));
  const reader = endpoint.response.body.getReader();
  await reader.read();
  await reader.cancel('gone');
  assert.equal(endpoint.closed, true);
  await until(() => closes.length > 0, 5000, 'the close event');
  await tick(10);
  assert.equal(closes.length, 1);
  assert.equal(closes[0].reason, 'client disconnected');
  await assert.rejects(endpoint.send('late'), { code: 'ERR_SSE_CLOSED' });
});

test('a consumer that never reads is cut off as a slow consumer', async () => {
  const endpoint = new EventEndpoint(new Request('http://localhost/'), { maxBufferedBytes: 64 * 1024 });
  const closes = [];
  endpoint.addEventListener('close', (ev) => closes.push(ev));
  for (let i = 0; i < 1000 && !endpoint.closed; i++) endpoint.send('y'.repeat(1000));
  assert.equal(endpoint.closed, true);
  await until(() => closes.length > 0, 5000, 'the close event');
  assert.equal(closes[0].reason, 'slow consumer');
  assert.equal(closes[0].wasClean, false);
  await assert.rejects(endpoint.response.body.getReader().read(), /slow consumer/);
});

test('close(true), then a Request carrying the token gets 204 with no body', async () => {
  const first = new EventEndpoint(new Request('http://localhost/'), {
    headers: { 'Access-Control-Allow-Origin': '*' },
  });
  first.send('bye', '9');
  first.close(true);
  const text = await new Response(first.response.body).text();
  const token = /id: ([0-9a-f]{80})\nevent: native-sse:stop\n/.exec(text)?.[1];
  assert.ok(token, text);

  const again = new EventEndpoint(new Request('http://localhost/', { headers: { 'Last-Event-ID': token } }), {
    headers: { 'Access-Control-Allow-Origin': '*' },
  });
  assert.equal(again.closed, true);
  assert.equal(again.response.status, 204);
  assert.equal(again.response.body, null);
  assert.equal(again.response.headers.get('content-type'), null);
  assert.equal(again.response.headers.get('access-control-allow-origin'), '*');
  let closed = 0;
  again.addEventListener('close', () => closed++);
  await until(() => closed > 0, 5000, 'the close event');
  await tick(5);
  assert.equal(closed, 1);
});
