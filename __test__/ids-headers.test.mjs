// Ids that round-trip and headers that cannot break a stream.
import test from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { once } from 'node:events';
import { EventEndpoint, Channel } from 'native-sse';
import { serve, until, RawClient, parseEventStream } from './helpers.mjs';

test('a Last-Event-ID sent as UTF-8, as browsers send it, resumes exactly; bytes that are not UTF-8 stay as read', async (t) => {
  const channel = new Channel({ historySize: 10 });
  for (const id of ['café-1', 'café-2', '日本-3']) channel.broadcast(`after ${id}`, { id });
  const endpoints = [];
  const app = await serve((req, res) => {
    const endpoint = new EventEndpoint(req, res, { keepAlive: 0 });
    const lastEventId = endpoint.lastEventId;
    endpoints.push({ endpoint, lastEventId, replay: req.url === '/sub' ? channel.subscribe(endpoint) : null });
  });
  t.after(() => app.close());
  // The header's bytes are UTF-8; Node reads them as latin1.
  const client = RawClient.connect(app.port, {
    path: '/sub',
    headers: { 'Last-Event-ID': Buffer.from('café-2').toString('latin1') },
  });
  t.after(() => client.destroy());
  await client.waitFor('data: after 日本-3');
  assert.equal(endpoints[0].lastEventId, 'café-2');
  assert.equal(endpoints[0].endpoint.lastEventId, '日本-3');
  assert.deepEqual(endpoints[0].replay, { replayed: 1, complete: true });
  assert.deepEqual(
    parseEventStream(client.body).events.map((e) => e.lastEventId),
    ['日本-3'],
  );

  const latin1 = RawClient.connect(app.port, { headers: { 'Last-Event-ID': 'caf\xe9' } });
  t.after(() => latin1.destroy());
  await until(() => endpoints.length === 2);
  assert.equal(endpoints[1].lastEventId, 'caf\xe9', 'not valid UTF-8: kept as read');
});

test('an id with a lone surrogate is refused: it could not come back as Last-Event-ID', async (t) => {
  const app = await serve((req, res) => {
    const endpoint = new EventEndpoint(req, res);
    t.after(() => endpoint.close());
    assert.rejects(
      endpoint.send('x', 'a\uD800'),
      (err) => err instanceof TypeError && err.code === 'ERR_SSE_INVALID_ID' && /"eventId"/.test(err.message),
    );
    assert.throws(
      () => new Channel().broadcast('x', { id: '\uDC00' }),
      (err) => err.code === 'ERR_SSE_INVALID_ID' && /"options.id"/.test(err.message),
    );
    res.end();
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await until(() => client.closed || client.head !== null);
});

test("an id too long to come back is refused; the longest allowed comes back through Node's default header limit beside a 4 KiB cookie", async (t) => {
  const longest = 'i'.repeat(4096);
  const endpoints = [];
  const app = await serve((req, res) => endpoints.push(new EventEndpoint(req, res, { keepAlive: 0 })));
  t.after(() => {
    for (const endpoint of endpoints) endpoint.close();
    app.close();
  });
  const first = RawClient.connect(app.port);
  t.after(() => first.destroy());
  await first.waitFor(': ok');
  const [endpoint] = endpoints;
  const tooLong = (name) => (err) =>
    err instanceof TypeError &&
    err.code === 'ERR_SSE_INVALID_ID' &&
    err.message.includes(`"${name}"`) &&
    /4096 bytes/.test(err.message);
  // Counted in UTF-8 bytes, as the header goes out: 2,049 two-byte letters.
  for (const id of [`${longest}i`, 'é'.repeat(2049), 'x'.repeat(100 * 1024)]) {
    await assert.rejects(endpoint.send('x', id), tooLong('eventId'));
    await assert.rejects(endpoint.sendEvent('tick', 'x', id), tooLong('eventId'));
    assert.throws(() => new Channel().broadcast('x', { id }), tooLong('options.id'));
  }
  await endpoint.send('kept', longest);
  await until(() => parseEventStream(first.body).events.length === 1, 5000, 'the event');
  assert.equal(parseEventStream(first.body).events[0].lastEventId, longest);
  // The client comes back with it, and a large cookie: Node takes the request.
  const back = RawClient.connect(app.port, {
    headers: { 'Last-Event-ID': longest, Cookie: `session=${'c'.repeat(4096)}`, 'User-Agent': 'u'.repeat(512) },
  });
  t.after(() => back.destroy());
  await until(() => back.head !== null, 5000, "the reconnect's response");
  assert.equal(back.head.status, 200);
  await until(() => endpoints.length === 2, 5000, 'the second endpoint');
  assert.equal(endpoints[1].lastEventId, longest);
});

test('headers that would break the stream are refused before anything is written, naming the header', async (t) => {
  const outcomes = [];
  const app = await serve((req, res) => {
    for (const headers of [
      { 'Content-Length': '0' },
      { 'transfer-encoding': 'identity' },
      { 'Content-Encoding': 'gzip' },
    ]) {
      try {
        new EventEndpoint(req, res, { headers });
        outcomes.push('accepted');
      } catch (err) {
        outcomes.push(err);
      }
    }
    outcomes.push(res.headersSent);
    res.end();
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await until(() => outcomes.length === 4);
  for (const [i, name] of ['Content-Length', 'transfer-encoding', 'Content-Encoding'].entries()) {
    assert.ok(outcomes[i] instanceof TypeError, String(outcomes[i]));
    assert.equal(outcomes[i].code, 'ERR_INVALID_ARG_VALUE');
    assert.match(outcomes[i].message, new RegExp(`"options.headers.${name}"`));
  }
  assert.equal(outcomes[3], false, 'nothing was written');

  // On HTTP/2, connection-specific headers too (Node refuses them there).
  const h2 = http2.createServer((req, res) => {
    try {
      new EventEndpoint(req, res, { headers: { Connection: 'keep-alive' } });
      outcomes.push('accepted');
    } catch (err) {
      outcomes.push(err);
    }
    res.end();
  });
  h2.listen(0, '127.0.0.1');
  await once(h2, 'listening');
  t.after(() => h2.close());
  const session = http2.connect(`http://127.0.0.1:${h2.address().port}`);
  t.after(() => session.close());
  const stream = session.request({ ':path': '/' });
  stream.resume();
  await once(stream, 'end');
  assert.match(outcomes[4].message, /"options.headers.Connection" argument would break the event stream/);
});
