// node:http2 compatibility API: h2c and TLS, read with http2.connect.
import test from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { once } from 'node:events';
import selfsigned from 'selfsigned';
import { EventEndpoint } from 'native-sse';
import { until, tick, parseEventStream } from './helpers.mjs';

// A certificate made for this run, for 127.0.0.1.
const pems = await selfsigned.generate([{ name: 'commonName', value: '127.0.0.1' }], {
  keyType: 'ec',
  algorithm: 'sha256',
  extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
});

async function serveH2(t, handler, { tls = false } = {}) {
  const server = tls
    ? http2.createSecureServer({ key: pems.private, cert: pems.cert }, handler)
    : http2.createServer(handler);
  const sessions = new Set();
  server.on('session', (session) => sessions.add(session));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const session of sessions) session.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  const origin = `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}`;
  const client = http2.connect(origin, tls ? { ca: pems.cert } : {});
  client.on('error', () => {});
  t.after(() => client.destroy());
  return client;
}

/** Opens a stream and collects its headers and body text. */
function get(client, headers = {}) {
  const stream = client.request({ ':path': '/', accept: 'text/event-stream', ...headers });
  const result = { stream, headers: null, text: '', ended: false };
  stream.setEncoding('utf8');
  stream.on('response', (h) => (result.headers = h));
  stream.on('data', (chunk) => (result.text += chunk));
  stream.on('end', () => (result.ended = true));
  stream.on('error', () => {});
  return result;
}

for (const tls of [false, true]) {
  const kind = tls ? 'TLS' : 'h2c';

  test(`${kind}: frames, custom events and headers, without connection-specific headers`, async (t) => {
    const client = await serveH2(
      t,
      (req, res) => {
        const events = new EventEndpoint(req, res, { reconnectionTime: 500 });
        events.send('hello', '1');
        events.sendEvent('tick', 'line one\nline two');
        setTimeout(() => events.dispatchEvent(new MessageEvent('later', { data: 'x', lastEventId: '2' })), 10);
      },
      { tls },
    );
    const got = get(client);
    await until(() => got.text.includes('event: later'));
    assert.equal(got.headers[':status'], 200);
    assert.equal(got.headers['content-type'], 'text/event-stream');
    assert.equal(got.headers['cache-control'], 'no-cache');
    assert.equal(got.headers.connection, undefined);
    assert.equal(got.headers['transfer-encoding'], undefined);
    assert.equal(got.headers['keep-alive'], undefined);
    await until(() => got.text.endsWith('data: x\n\n'));
    assert.equal(
      got.text,
      ': ok\nretry: 500\n\nid: 1\ndata: hello\n\nevent: tick\ndata: line one\ndata: line two\n\nid: 2\nevent: later\ndata: x\n\n',
    );
  });

  test(`${kind}: close() from the server ends the stream; close(true) then 204`, async (t) => {
    const endpoints = [];
    const client = await serveH2(
      t,
      (req, res) => {
        const events = new EventEndpoint(req, res);
        endpoints.push(events);
        if (!events.closed) {
          events.send('bye', '5');
          setTimeout(() => events.close(true), 10);
        }
      },
      { tls },
    );
    const first = get(client);
    await until(() => first.ended);
    const token = /id: ([0-9a-f]{80})\nevent: native-sse:stop\ndata\n\n$/.exec(first.text)?.[1];
    assert.ok(token, first.text);
    const second = get(client, { 'last-event-id': token });
    await until(() => second.ended);
    assert.equal(second.headers[':status'], 204);
    assert.equal(second.text, '');
    assert.equal(endpoints[1].closed, true);
    assert.equal(endpoints[0].closed, true);
  });

  test(`${kind}: a client that resets its stream gives one close event`, async (t) => {
    let endpoint;
    const client = await serveH2(
      t,
      (req, res) => {
        endpoint = new EventEndpoint(req, res);
      },
      { tls },
    );
    const got = get(client);
    await until(() => got.text.includes(': ok'));
    const closes = [];
    endpoint.addEventListener('close', (ev) => closes.push(ev));
    got.stream.close(http2.constants.NGHTTP2_CANCEL);
    await until(() => closes.length === 1);
    await tick(20);
    assert.equal(closes.length, 1);
    assert.equal(endpoint.closed, true);
    await assert.rejects(endpoint.send('late'), { code: 'ERR_SSE_CLOSED' });
  });
}

test('h2c: backpressure holds an awaiting producer while the client does not read', async (t) => {
  let endpoint;
  const highWaterMark = 16 * 1024;
  const client = await serveH2(t, (req, res) => {
    endpoint = new EventEndpoint(req, res, { highWaterMark, keepAlive: 0 });
  });
  const got = get(client);
  await until(() => got.text.includes(': ok'));
  got.stream.pause();
  const frame = 'q'.repeat(1000);
  let sent = 0;
  let stalled = false;
  while (sent < 100_000) {
    const settled = await Promise.race([
      endpoint.send(frame, String(sent)).then(() => true),
      tick(300).then(() => false),
    ]);
    if (!settled) {
      stalled = true;
      break;
    }
    sent++;
  }
  assert.ok(stalled, 'send() waited');
  assert.ok(
    endpoint.bufferedAmount <= 2 * highWaterMark + 2 * 1024 + 64 * 1024,
    `bufferedAmount ${endpoint.bufferedAmount}`,
  );
  got.stream.resume();
  await until(() => got.text.includes(`id: ${sent}\n`), 10_000);
  const ids = parseEventStream(got.text).events.map((e) => Number(e.lastEventId));
  assert.deepEqual(
    ids,
    Array.from({ length: sent + 1 }, (_, i) => i),
  );
});
