// The demo of `npm start` starts, prints its URL, serves its page and streams.
import test from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { until, startProgram } from './helpers.mjs';

test('the demo serves a page and a live event stream', async (t) => {
  const { url } = await startProgram(t, process.execPath, ['examples/demo/server.mjs']);

  const page = await fetch(url);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /new EventSource\('\/events'\)/);

  const es = new EventSource(new URL('/events', url));
  t.after(() => es.close());
  const got = { welcome: [], message: [] };
  es.addEventListener('welcome', (e) => got.welcome.push(e.data));
  es.onmessage = (e) => got.message.push([e.lastEventId, e.data]);
  await until(() => got.message.length >= 2, 5000, 'two clock ticks');
  assert.match(got.welcome[0], /visitor #1/);
  assert.deepEqual(
    got.message.map(([id]) => id),
    ['1', '2'],
  );
  assert.match(got.message[0][1], /^\d\d:\d\d:\d\d$/);
});

/** Starts an example; resolves to the URL it prints. */
const startExample = async (t, file) => (await startProgram(t, process.execPath, [file])).url;

test('examples/fetch-style streams to an EventSource', async (t) => {
  const url = await startExample(t, 'examples/fetch-style/server.mjs');
  const es = new EventSource(url);
  t.after(() => es.close());
  const got = [];
  es.addEventListener('welcome', (e) => got.push(e.data));
  es.onmessage = (e) => got.push(e.data);
  await until(() => got.length >= 2, 5000, 'two events');
  assert.equal(got[0], 'resuming after event 0');
  assert.match(got[1], /^event number 1\nsent at /);
});

test('examples/http2 streams over HTTP/2 with TLS', async (t) => {
  const http2 = await import('node:http2');
  const url = new URL(await startExample(t, 'examples/http2/server.mjs'));
  const client = http2.connect(url.origin, { rejectUnauthorized: false });
  t.after(() => client.destroy());
  const stream = client.request({ ':path': '/events' });
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => (text += chunk));
  await until(() => text.includes('id: 1\n'), 5000, 'the first tick');
  assert.match(text, /event: welcome\ndata: HTTP\/2\.0 stream/);
});

test('examples/chat broadcasts to every page and resumes a reconnecting one', async (t) => {
  const url = await startExample(t, 'examples/chat/server.mjs');
  const say = (text) => fetch(new URL('/send', url), { method: 'POST', body: JSON.stringify({ name: 'ann', text }) });
  const a = new EventSource(new URL('/events', url));
  const b = new EventSource(new URL('/events', url));
  t.after(() => {
    a.close();
    b.close();
  });
  const got = { a: [], b: [] };
  a.addEventListener('chat', (e) => got.a.push(JSON.parse(e.data).text));
  b.addEventListener('chat', (e) => got.b.push(JSON.parse(e.data).text));
  await until(() => a.readyState === EventSource.OPEN && b.readyState === EventSource.OPEN);
  await say('hello');
  await say('world');
  await until(() => got.a.length === 2 && got.b.length === 2);
  assert.deepEqual(got.a, ['hello', 'world']);
  // A page that comes back with its last id gets what it missed.
  const late = new EventSource(new URL('/events', url), {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, 'Last-Event-ID': '1' } }),
  });
  t.after(() => late.close());
  const missed = [];
  late.addEventListener('chat', (e) => missed.push(JSON.parse(e.data).text));
  await until(() => missed.length === 1);
  assert.deepEqual(missed, ['world']);
});

test('examples/metrics exports diagnostics() for Prometheus', async (t) => {
  const metricsUrl = await startExample(t, 'examples/metrics/server.mjs');
  const events = await fetch(metricsUrl.replace('/metrics', '/events'));
  const reader = events.body.getReader();
  await reader.read(); // the stream is open
  const text = await (await fetch(metricsUrl)).text();
  assert.match(text, /^sse_open_streams 1$/m);
  assert.match(text, /^sse_streams_opened_total 1$/m);
  assert.match(text, /^sse_memory_budget_bytes 134217728$/m);
  assert.match(text, /^# TYPE sse_bytes_written_total counter$/m);
  await reader.cancel();
});
