// Adoption (`adopt: true`): Rust takes a plain HTTP/1.1 connection over
// from Node once its headers are out, and alone writes to it, watches it and
// ends it. Counted on the client side and in /proc/self/fd: one descriptor
// per adopted connection, every event once and in order, every ending
// finished with its descriptor released, and the application's
// `req.on('close')` still told when the connection really closes. Also the
// cases that must not be adopted. Node on Linux (lib/transports/adoption.js
// reads Node's internals; the suite runs it under every Node major).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, existsSync } from 'node:fs';
import { EventEndpoint, Channel, closeAll, diagnostics } from 'native-sse';
import { serve, RawClient, until, parseEventStream, serverSocket } from './helpers.mjs';

const linux = existsSync('/proc/self/fd') && !globalThis.Bun && !globalThis.Deno;
const descriptors = () => readdirSync('/proc/self/fd').length;

/** A server whose endpoints are adopted; what each request's `close`
 * listener saw, and the endpoints' close reasons. */
async function adoptingServer(t, options = {}, { onRequest } = {}) {
  const endpoints = [];
  const requestCloses = [];
  const app = await serve((req, res) => {
    onRequest?.(req, res);
    const endpoint = new EventEndpoint(req, res, { adopt: true, keepAlive: 0, ...options });
    endpoint.closes = [];
    endpoint.addEventListener('close', (event) => endpoint.closes.push(event.reason));
    // The common cleanup: it must run when the client really leaves.
    req.on('close', () => requestCloses.push(endpoints.indexOf(endpoint)));
    endpoints.push(endpoint);
  });
  t.after(() => app.close());
  return { app, endpoints, requestCloses };
}

test('adopted: one descriptor per connection, events in order with keep-alives written by Rust, and a client that leaves is seen from Rust', {
  skip: !linux,
}, async (t) => {
  const { app, endpoints, requestCloses } = await adoptingServer(t, { keepAlive: 100 });
  const adoptedBefore = diagnostics().adopted;
  const before = descriptors();
  const count = 40;
  const clients = Array.from({ length: count }, () => RawClient.connect(app.port));
  t.after(() => {
    for (const c of clients) c.destroy();
  });
  await until(() => diagnostics().adopted - adoptedBefore === count, 20_000, 'every connection adopted');
  // A client's socket and the server's one descriptor each: Node's is
  // closed, Rust's duplicate is the connection's only one.
  await until(() => descriptors() - before === 2 * count, 10_000, 'two descriptors a pair');
  assert.equal(diagnostics().adoptedConnections, count);
  for (const [i, endpoint] of endpoints.entries()) {
    for (let n = 0; n < 20; n++) endpoint.send(`${i}:${n}`, String(n));
  }
  await until(
    () => clients.every((c) => parseEventStream(c.body).events.length === 20),
    20_000,
    'twenty events on every client',
  );
  for (const c of clients) {
    const { events } = parseEventStream(c.body);
    const i = Number(events[0].data.split(':')[0]);
    assert.deepEqual(
      events.map((e) => e.data),
      Array.from({ length: 20 }, (_, n) => `${i}:${n}`),
    );
  }
  // Idle, each gets keep-alive comments from Rust's timer.
  const comments = (c) => c.body.split('\n').filter((line) => line === ':').length;
  await until(() => clients.every((c) => comments(c) >= 2), 20_000, 'keep-alive comments');
  assert.deepEqual(requestCloses, [], 'no request was told it closed while its client is there');
  // Half the clients leave: Rust sees it, the endpoints close, the
  // application's cleanup runs, and their descriptors are released.
  for (const c of clients.slice(0, count / 2)) c.destroy();
  await until(() => requestCloses.length === count / 2, 20_000, 'the request close listeners');
  const left = endpoints.filter((e) => e.closed);
  assert.equal(left.length, count / 2);
  for (const e of left) assert.deepEqual(e.closes, ['client disconnected']);
  await until(() => descriptors() - before === count, 10_000, 'the descriptors of those that left');
  assert.equal(diagnostics().adoptedConnections, count / 2);
});

test('adopted: close() and close(true) end the body with its last chunk and close the connection; closeAll() waits for them', {
  skip: !linux,
}, async (t) => {
  const { app, endpoints, requestCloses } = await adoptingServer(t);
  const adoptedBefore = diagnostics().adopted;
  const clients = Array.from({ length: 3 }, () => RawClient.connect(app.port));
  t.after(() => {
    for (const c of clients) c.destroy();
  });
  await until(() => diagnostics().adopted - adoptedBefore === 3, 20_000, 'adopted');
  const before = descriptors();
  const byClient = (i) => endpoints[Number(parseEventStream(clients[i].body).events[0].data)];
  for (const [i, endpoint] of endpoints.entries()) endpoint.send(String(i), 'x');
  await until(() => clients.every((c) => parseEventStream(c.body).events.length === 1), 10_000, 'first events');
  for (const endpoint of endpoints) endpoint.send('last');
  byClient(0).close();
  byClient(1).close(true);
  const shutdown = closeAll({ timeout: 10_000 });
  const outcome = await shutdown;
  assert.equal(outcome.dropped, false, 'every connection finished in time');
  await until(() => clients.every((c) => c.closed), 10_000, 'the server to close every connection');
  for (const c of clients) {
    assert.ok(c.raw.toString('latin1').endsWith('0\r\n\r\n'), 'the body ends with its last chunk');
    const messages = parseEventStream(c.body).events.filter((e) => e.type === 'message');
    assert.equal(messages.at(-1).data, 'last', 'what was queued went first');
  }
  assert.ok(clients[1].body.includes('event: native-sse:stop'), 'close(true) sent its farewell');
  await until(() => requestCloses.length === 3, 10_000, 'the request close listeners');
  await until(() => descriptors() <= before - 3, 10_000, 'the server descriptors released');
  assert.equal(diagnostics().adoptedConnections, 0);
});

test('adopted: a broadcast reaches every client once and in order; awaited sends to a slow reader resolve as it reads', {
  skip: !linux,
}, async (t) => {
  const { app, endpoints } = await adoptingServer(t, { maxBufferedBytes: 32 * 1024 * 1024 });
  const adoptedBefore = diagnostics().adopted;
  const count = 120;
  const clients = Array.from({ length: count }, () => RawClient.connect(app.port));
  t.after(() => {
    for (const c of clients) c.destroy();
  });
  await until(() => diagnostics().adopted - adoptedBefore === count, 20_000, 'every connection adopted');
  const room = new Channel({ historySize: 0 });
  for (const endpoint of endpoints) room.subscribe(endpoint);
  const written = diagnostics().bytesWritten;
  const rounds = 300;
  for (let n = 0; n < rounds; n++) {
    room.broadcast(String(n), { event: 'tick' });
    // Some turns carry one event, some several: flushes of every size.
    if (n % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  const ticks = (c) => parseEventStream(c.body).events.filter((e) => e.type === 'tick');
  await until(() => clients.every((c) => ticks(c).length === rounds), 30_000, 'every broadcast on every client');
  const expected = Array.from({ length: rounds }, (_, n) => String(n));
  for (const c of clients)
    assert.deepEqual(
      ticks(c).map((e) => e.data),
      expected,
    );
  // The bytes the threads wrote are counted as written.
  await until(() => diagnostics().bytesWritten - written >= count * rounds * 20, 10_000, 'bytes counted');

  // One client reads nothing for a while: its awaited sends wait, the
  // others' do not, and once it reads they all resolve, in order.
  const quick = clients[1];
  const slowClient = RawClient.connect(app.port);
  t.after(() => slowClient.destroy());
  await until(() => diagnostics().adopted - adoptedBefore === count + 1, 20_000, 'the slow one adopted');
  slowClient.socket.pause();
  const slow = endpoints.at(-1);
  const big = 'y'.repeat(16 * 1024);
  const sends = 1000; // 16 MiB: more than loopback's socket buffers take
  const slowSends = [];
  let resolved = 0;
  for (let i = 0; i < sends; i++) slowSends.push(slow.send(`${i}:${big}`).then(() => resolved++));
  await endpoints[1].send('quick');
  await until(() => quick.body.includes('data: quick'), 10_000, 'the quick one');
  assert.ok(resolved < sends, 'sends to a reader that reads nothing wait for it');
  slowClient.socket.resume();
  await Promise.all(slowSends);
  const last = `${sends - 1}:${big}\n\n`;
  await until(() => slowClient.raw.includes(last), 30_000, 'the slow reader has every event');
  const { events } = parseEventStream(slowClient.body);
  const messages = events.filter((e) => e.type === 'message');
  assert.deepEqual(
    messages.map((e) => Number(e.data.split(':')[0])),
    Array.from({ length: sends }, (_, i) => i),
  );
});

test('adopted: a slow consumer is cut off with a reset, and its descriptor released', { skip: !linux }, async (t) => {
  const { app, endpoints } = await adoptingServer(t, { maxBufferedBytes: 256 * 1024 });
  const adoptedBefore = diagnostics().adopted;
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await until(() => diagnostics().adopted - adoptedBefore === 1, 20_000, 'adopted');
  // Read now: once the reset arrives, the client's socket forgets its port.
  const clientPort = client.socket.localPort;
  client.socket.pause();
  const [endpoint] = endpoints;
  const frame = 'x'.repeat(1000);
  for (let round = 0; round < 5000 && !endpoint.closed; round++) {
    for (let i = 0; i < 64; i++) endpoint.send(frame).catch(() => {});
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.deepEqual(endpoint.closes, ['slow consumer']);
  await until(() => serverSocket(app.port, clientPort) === null, 10_000, 'the reset socket to go');
  await until(() => diagnostics().adoptedConnections === 0, 10_000, 'the connection released');
  client.socket.resume();
  await until(() => client.closed, 10_000, 'the client to see the end');
});

test('not adopted: a socket someone else watches for close (on-finished, as morgan uses it), and a bad adopt option', {
  skip: !linux,
}, async (t) => {
  const watched = [];
  const { app, endpoints } = await adoptingServer(
    t,
    {},
    {
      onRequest: (req) => req.socket.on('close', () => watched.push('socket closed')),
    },
  );
  const refusedBefore = diagnostics().notAdopted.socketListeners ?? 0;
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await until(() => (diagnostics().notAdopted.socketListeners ?? 0) === refusedBefore + 1, 20_000, 'refused');
  // It goes on as a stream Node owns, and its watcher is told at the end.
  endpoints[0].send('still served');
  await until(() => parseEventStream(client.body).events.length === 1, 10_000, 'the event');
  assert.deepEqual(watched, []);
  client.destroy();
  await until(() => watched.length === 1, 10_000, 'the socket watcher');

  const bad = await serve((req, res) => {
    assert.throws(
      () => new EventEndpoint(req, res, { adopt: 'yes' }),
      (err) => err instanceof TypeError && /"options.adopt"/.test(err.message),
    );
    res.end('checked');
  });
  t.after(() => bad.close());
  const answer = await fetch(bad.url);
  assert.equal(await answer.text(), 'checked');
});
