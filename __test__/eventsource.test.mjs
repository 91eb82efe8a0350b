// The reference client: the `eventsource` package, a WHATWG EventSource.
import test from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { EventEndpoint } from 'native-sse';
import { serve, until } from './helpers.mjs';

test('messages, custom events and ids reach an EventSource', async (t) => {
  const app = await serve((req, res) => {
    const events = new EventEndpoint(req, res, { reconnectionTime: 3000 });
    events.dispatchEvent(new MessageEvent('my-event', { data: 'Hello, World!', lastEventId: '1' }));
    events.send('plain message', '2');
    events.sendEvent('tick', 'line one\nline two');
  });
  t.after(() => app.close());
  const es = new EventSource(app.url);
  t.after(() => es.close());
  const got = [];
  es.addEventListener('my-event', (e) => got.push(['my-event', e.data, e.lastEventId]));
  es.addEventListener('message', (e) => got.push(['message', e.data, e.lastEventId]));
  es.addEventListener('tick', (e) => got.push(['tick', e.data, e.lastEventId]));
  await until(() => got.length === 3);
  assert.deepEqual(got, [
    ['my-event', 'Hello, World!', '1'],
    ['message', 'plain message', '2'],
    // The eventsource package leaves lastEventId empty on an event without
    // an id line (browsers keep the last one), so only data is compared.
    ['tick', 'line one\nline two', got[2][2]],
  ]);
});

test('after close() the client reconnects with Last-Event-ID and resumes', async (t) => {
  const seen = [];
  const app = await serve((req, res) => {
    const events = new EventEndpoint(req, res, { reconnectionTime: 10 });
    seen.push({ header: req.headers['last-event-id'], lastEventId: events.lastEventId });
    const next = Number(events.lastEventId || 0) + 1;
    events.send(`event ${next}`, String(next));
    if (next < 3) events.close();
  });
  t.after(() => app.close());
  const es = new EventSource(app.url);
  t.after(() => es.close());
  const got = [];
  es.onmessage = (e) => got.push([e.data, e.lastEventId]);
  await until(() => got.length === 3);
  assert.deepEqual(got, [
    ['event 1', '1'],
    ['event 2', '2'],
    ['event 3', '3'],
  ]);
  assert.deepEqual(seen, [
    { header: undefined, lastEventId: '' },
    { header: '1', lastEventId: '1' },
    { header: '2', lastEventId: '2' },
  ]);
});

test('after close(true) the client stops reconnecting for good', async (t) => {
  let requests = 0;
  const statuses = [];
  const app = await serve((req, res) => {
    requests++;
    const events = new EventEndpoint(req, res, { reconnectionTime: 10 });
    res.on('finish', () => statuses.push(res.statusCode));
    if (!events.closed) {
      events.send('bye', 'app-id-1');
      setTimeout(() => events.close(true), 10);
    }
  });
  t.after(() => app.close());
  const es = new EventSource(app.url);
  t.after(() => es.close());
  const messages = [];
  let stopEvents = 0;
  es.onmessage = (e) => messages.push(e.data);
  es.addEventListener('native-sse:stop', () => stopEvents++);
  await until(() => es.readyState === EventSource.CLOSED, 5000, 'the client to give up');
  // Give a wrongly reconnecting client time to show itself.
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(requests, 2, 'one stream, then one refused reconnect');
  assert.deepEqual(statuses, [200, 204]);
  assert.deepEqual(messages, ['bye'], 'onmessage never sees the stop frame');
  assert.equal(stopEvents, 1);
});

test('1,000 sends without awaiting arrive complete and in order', async (t) => {
  const app = await serve((req, res) => {
    const events = new EventEndpoint(req, res);
    for (let i = 0; i < 1000; i++) events.send(`message ${i}`, String(i));
  });
  t.after(() => app.close());
  const es = new EventSource(app.url);
  t.after(() => es.close());
  const got = [];
  es.onmessage = (e) => got.push(e.data);
  await until(() => got.length >= 1000);
  assert.deepEqual(
    got,
    Array.from({ length: 1000 }, (_, i) => `message ${i}`),
  );
});

test('non-ASCII text round-trips through an EventSource', async (t) => {
  const texts = ['héllo wörld', '日本語のテキスト', '🎉🚀 emoji', 'mixed\r\nlines ✓'];
  const app = await serve((req, res) => {
    const events = new EventEndpoint(req, res);
    for (const text of texts) events.sendEvent('ünicode', text);
  });
  t.after(() => app.close());
  const es = new EventSource(app.url);
  t.after(() => es.close());
  const got = [];
  es.addEventListener('ünicode', (e) => got.push(e.data));
  await until(() => got.length === texts.length);
  assert.deepEqual(got, ['héllo wörld', '日本語のテキスト', '🎉🚀 emoji', 'mixed\nlines ✓']);
});
