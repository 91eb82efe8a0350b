// The wire contract of DESIGN.md, checked byte for byte on raw sockets.
import test from 'node:test';
import assert from 'node:assert/strict';
import { EventEndpoint } from 'native-sse';
import { serve, RawClient, until, parseEventStream } from './helpers.mjs';

test('a stream opens with the event-stream headers and a comment', async (t) => {
  const app = await serve((req, res) => {
    new EventEndpoint(req, res);
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await client.waitFor(': ok\n\n');
  const { status, headers } = client.head;
  assert.equal(status, 200);
  assert.equal(headers['content-type'], 'text/event-stream');
  assert.equal(headers['cache-control'], 'no-cache');
  assert.equal(headers['x-accel-buffering'], 'no');
  // Closed when the stream ends if it may be adopted (the default, where
  // sockets have descriptors: not Bun's nor Deno's), and said so; kept
  // alive otherwise.
  const adoptable = process.env.NATIVE_SSE_ADOPT !== '0' && !globalThis.Bun && !globalThis.Deno;
  assert.equal(headers.connection, adoptable ? 'close' : 'keep-alive');
  assert.equal(client.body, ': ok\n\n');
});

test('frames carry id, event and one data line per line, split on CRLF, CR and LF', async (t) => {
  const app = await serve((req, res) => {
    const events = new EventEndpoint(req, res);
    events.send('hello', '1');
    events.sendEvent('tick', 'a\r\nb\rc\nd');
    events.send('');
    events.sendEvent('message', 'plain', '');
    events.dispatchEvent(new MessageEvent('custom', { data: 'x\n', lastEventId: '2' }));
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await client.waitFor('id: 2\n');
  await until(() => client.body.endsWith('data\n\n'));
  assert.equal(
    client.body,
    ': ok\n\n' +
      'id: 1\ndata: hello\n\n' +
      'event: tick\ndata: a\ndata: b\ndata: c\ndata: d\n\n' +
      'data\n\n' +
      'data: plain\n\n' +
      'id: 2\nevent: custom\ndata: x\ndata\n\n',
  );
  const { events } = parseEventStream(client.body);
  assert.deepEqual(
    events.map((e) => [e.type, e.data, e.lastEventId]),
    [
      ['message', 'hello', '1'],
      ['tick', 'a\nb\nc\nd', '1'],
      ['message', '', '1'],
      ['message', 'plain', '1'],
      ['custom', 'x\n', '2'],
    ],
  );
});

test('retry is sent once, when the stream opens, not on every frame', async (t) => {
  const app = await serve((req, res) => {
    const events = new EventEndpoint(req, res, { reconnectionTime: 2500 });
    events.send('one');
    setTimeout(() => events.send('two'), 20);
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await client.waitFor('data: two');
  assert.equal(client.body, ': ok\nretry: 2500\n\ndata: one\n\ndata: two\n\n');
  assert.equal(parseEventStream(client.body).retry, 2500);
});

test('frames queued in one turn leave in one write, in order', async (t) => {
  const app = await serve((req, res) => {
    const events = new EventEndpoint(req, res);
    for (let i = 0; i < 50; i++) events.send(String(i));
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await client.waitFor('data: 49\n\n');
  assert.equal(client.chunks.length, 1, 'opening and 50 frames in one chunk');
  const { events } = parseEventStream(client.body);
  assert.deepEqual(
    events.map((e) => e.data),
    Array.from({ length: 50 }, (_, i) => String(i)),
  );
});

test('non-ASCII data survives, and lone surrogates become U+FFFD', async (t) => {
  const text = 'héllo 世界 🎉 \u0000 end';
  const app = await serve((req, res) => {
    const events = new EventEndpoint(req, res);
    events.sendEvent('ünï', text, 'ïd-✓');
    events.send('a\uD800b');
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await client.waitFor('data: a');
  await until(() => client.body.endsWith('\n\n') && client.body.includes('a\uFFFDb'));
  const { events } = parseEventStream(client.body);
  assert.deepEqual(events[0], { type: 'ünï', data: text, lastEventId: 'ïd-✓' });
  assert.equal(events[1].data, 'a\uFFFDb');
});

test('close(true) ends with a stop token; the reconnect carrying it gets 204', async (t) => {
  const endpoints = [];
  const app = await serve((req, res) => {
    const events = new EventEndpoint(req, res, { headers: { 'Access-Control-Allow-Origin': '*' } });
    endpoints.push(events);
    if (!events.closed) {
      events.send('last', '42');
      events.close(true);
    }
  });
  t.after(() => app.close());

  const first = RawClient.connect(app.port);

  t.after(() => first.destroy());
  await until(() => first.ended);
  const match = /^id: ([0-9a-f]{80})\nevent: native-sse:stop\ndata\n\n$/m.exec(
    first.body.slice(first.body.indexOf('data: last\n\n') + 12),
  );
  assert.ok(match, `a stop frame ends the stream: ${JSON.stringify(first.body)}`);
  const token = match[1];
  // The application's id is not what stops the client.
  assert.equal(endpoints[0].lastEventId, '42');
  const { events } = parseEventStream(first.body);
  assert.deepEqual(
    events.map((e) => e.type),
    ['message', 'native-sse:stop'],
    'onmessage handlers see only the real message',
  );

  const back = RawClient.connect(app.port, { headers: { 'Last-Event-ID': token } });

  t.after(() => back.destroy());
  await until(() => back.head !== null && back.closed === false && back.raw.length > 0);
  await until(() => back.head.status === 204);
  assert.equal(back.head.headers['content-type'], undefined);
  assert.equal(back.head.headers['access-control-allow-origin'], '*');
  assert.equal(endpoints[1].closed, true);
  assert.equal(endpoints[1].lastEventId, token);

  // The endpoint's own last id is marked, as jsext marks it: the first
  // request carrying it gets 204 and uses the mark up (stop-marks.test.mjs).
  const marked = RawClient.connect(app.port, { headers: { 'Last-Event-ID': '42' } });
  t.after(() => marked.destroy());
  await until(() => marked.head !== null);
  assert.equal(marked.head.status, 204);
  // Then a client that holds the application's id is not stopped, nor is a forger.
  for (const id of ['42', 'f'.repeat(80), token.slice(0, 79) + (token.at(-1) === '0' ? '1' : '0')]) {
    const other = RawClient.connect(app.port, { headers: { 'Last-Event-ID': id } });
    t.after(() => other.destroy());
    await other.waitFor('data: last');
    assert.equal(other.head.status, 200);
  }
});

test('extra headers are sent, and cannot change the content type', async (t) => {
  const app = await serve((req, res) => {
    new EventEndpoint(req, res, {
      headers: {
        'Access-Control-Allow-Origin': 'https://example.org',
        'Content-Type': 'text/plain',
        'Cache-Control': 'no-store',
      },
    });
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await client.waitFor(': ok');
  assert.equal(client.head.headers['access-control-allow-origin'], 'https://example.org');
  assert.equal(client.head.headers['content-type'], 'text/event-stream');
  assert.equal(client.head.headers['cache-control'], 'no-store');
});

test('chunks written straight to the socket keep HTTP/1.1 framing intact for the next request', async (t) => {
  let served = 0;
  const app = await serve((req, res) => {
    served++;
    // Kept with Node (an adopted connection closes when its stream ends:
    // direct.test.mjs, the pipelined requests).
    const events = new EventEndpoint(req, res, { adopt: false });
    events.send(`response ${served}`);
    setTimeout(() => {
      events.send('later, through the socket');
      setTimeout(() => events.close(), 10);
    }, 10);
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await until(() => client.ended);
  assert.equal(client.body, ': ok\n\ndata: response 1\n\ndata: later, through the socket\n\n');
  assert.ok(client.chunks.length >= 2);
  // The same keep-alive connection serves a second stream after the first.
  const first = client.raw.length;
  client.socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  await until(() => client.raw.subarray(first).includes('data: response 2'));
  assert.match(client.raw.subarray(first).toString(), /^HTTP\/1\.1 200 OK\r\n/);
});

test('a HEAD request gets the headers and no body', async (t) => {
  let endpoint;
  const app = await serve((req, res) => {
    endpoint = new EventEndpoint(req, res);
    endpoint.send('not for HEAD');
    setTimeout(() => endpoint.send('nor this'), 10);
  });
  t.after(() => app.close());
  const response = await fetch(app.url, { method: 'HEAD' });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'text/event-stream');
  assert.equal(await response.text(), '');
  assert.equal(endpoint.closed, true, 'a HEAD request has no stream to keep open');
});

test('a response whose write was replaced (compression middleware) is written through it', async (t) => {
  const seen = [];
  const app = await serve((req, res) => {
    const write = res.write;
    res.write = function (chunk, ...rest) {
      seen.push(Buffer.from(chunk).toString());
      return write.call(this, chunk, ...rest);
    };
    const events = new EventEndpoint(req, res);
    events.send('one');
    setTimeout(() => events.send('two'), 10);
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await client.waitFor('data: two');
  assert.deepEqual(seen, [': ok\n\ndata: one\n\n', 'data: two\n\n']);
});
