// Adoption (the default): Rust takes a plain HTTP/1.1 connection over
// from Node once its headers are out, and alone writes to it, watches it and
// ends it. Counted on the client side and in /proc/self/fd: one descriptor
// per adopted connection, every event once and in order, every ending
// finished with its descriptor released, and the application's
// `req.on('close')` still told when the connection really closes. Also the
// cases that must not be adopted. Node on Linux (lib/transports/adoption.js
// reads Node's internals; the suite runs it under every Node major).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync, existsSync } from 'node:fs';
import http2 from 'node:http2';
import { execFile } from 'node:child_process';
import { EventEndpoint, Channel, closeAll, diagnostics } from 'native-sse';
import onFinished from 'on-finished';
import { serve, RawClient, until, parseEventStream, serverSocket } from './helpers.mjs';

const linux = existsSync('/proc/self/fd') && !globalThis.Bun && !globalThis.Deno;
/** This process's socket descriptors (not the epoll and event descriptors
 * of the threads that write, started with the first connection). */
const descriptors = () =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:');
    } catch {
      return false; // closed meanwhile (the one readdirSync read through)
    }
  }).length;

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

test('adopted: the let-go response still reaches the connection: res.write() follows what is queued, res.end() ends it cleanly, server.closeAllConnections() drops it, and once the stream has ended res.write() reaches nothing', {
  skip: !linux,
}, async (t) => {
  const responses = [];
  const { app, endpoints } = await adoptingServer(t, {}, { onRequest: (_req, res) => responses.push(res) });
  const clients = [];
  t.after(() => {
    for (const c of clients) c.destroy();
  });
  // One at a time: endpoints[i], responses[i] and clients[i] are one stream.
  for (let i = 0; i < 5; i++) {
    const adoptedBefore = diagnostics().adopted;
    clients.push(RawClient.connect(app.port));
    await until(() => diagnostics().adopted === adoptedBefore + 1, 20_000, `stream ${i} adopted`);
  }
  const messages = (i) => parseEventStream(clients[i].body).events.filter((e) => e.type === 'message');

  // Written behind the endpoint: after what the endpoint queued, as it is.
  endpoints[0].send('queued');
  assert.equal(responses[0].write('data: written behind\n\n'), true);
  await until(() => messages(0).length === 2, 10_000, 'both events');
  assert.deepEqual(
    messages(0).map((e) => e.data),
    ['queued', 'written behind'],
  );

  // Ended behind the endpoint: the body ends with its last chunk.
  endpoints[1].send('before the end');
  responses[1].end();
  await until(() => clients[1].closed, 10_000, 'the connection ended behind to close');
  assert.ok(clients[1].raw.toString('latin1').endsWith('0\r\n\r\n'), 'the body ends with its last chunk');
  assert.equal(messages(1).at(-1).data, 'before the end');
  await until(() => endpoints[1].closed, 10_000, 'the endpoint to close');
  assert.deepEqual(endpoints[1].closes, ['the response was ended by someone else']);

  // The client leaves: from the endpoint's close on (before Rust has
  // closed the connection), what is written to its response goes nowhere.
  let writtenAfterEnd;
  endpoints[2].addEventListener('close', () => {
    writtenAfterEnd = responses[2].write('data: stray\n\n');
  });
  clients[2].destroy();
  await until(() => writtenAfterEnd !== undefined, 10_000, 'the close listener');
  assert.equal(writtenAfterEnd, false);

  // The server drops every connection: the adopted ones too.
  app.server.closeAllConnections();
  await until(() => clients[3].closed && clients[4].closed, 10_000, 'the adopted connections to be dropped');
  await until(() => endpoints[3].closed && endpoints[4].closed, 10_000, 'their endpoints to close');
  await until(() => diagnostics().adoptedConnections === 0, 10_000, 'every adopted connection closed');
  for (const i of [0, 3, 4]) assert.ok(!clients[i].body.includes('stray'));
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

/** A server whose endpoints are adopted, with listeners for the end put
 * on the request, the response and the socket before adoption and after
 * it (after an `await`, in a later turn), and on-finished's; `seen` says
 * which ran, and how the response read when each was added. */
async function watchedServer(t) {
  const seen = [];
  const streams = [];
  const app = await serve(async (req, res) => {
    const stream = { endpoint: null, calls: {}, openWhenAdded: [] };
    streams.push(stream);
    const count = (name) => () => {
      stream.calls[name] = (stream.calls[name] ?? 0) + 1;
      seen.push(name);
    };
    // Before: as a logger or on-finished put them before the route runs.
    req.socket.on('close', count('socket close, before'));
    res.on('finish', count('response finish, before'));
    onFinished(res, count('on-finished, before'));
    const adopted = diagnostics().adopted;
    stream.endpoint = new EventEndpoint(req, res, { adopt: true, keepAlive: 0 });
    // After: once Rust has the connection (an await, such as an auth
    // check's, then the cleanup).
    await until(() => diagnostics().adopted > adopted, 20_000, 'adopted');
    stream.openWhenAdded.push(
      onFinished.isFinished(res),
      res.writableFinished,
      res.writableEnded,
      req.socket.writable,
      req.socket.readable,
    );
    req.on('close', count('request close, after'));
    res.on('close', count('response close, after'));
    res.once('finish', count('response finish, after'));
    req.socket.on('close', count('socket close, after'));
    onFinished(res, count('on-finished, after'));
    onFinished(req, count('on-finished request, after'));
    // One added and taken off again runs never.
    const removed = count('removed');
    res.on('close', removed);
    res.off('close', removed);
    stream.endpoint.send('ready');
  });
  t.after(() => app.close());
  return { app, streams, seen };
}

test('adopted with listeners for the end, before adoption and after an await (request, response, socket, on-finished): each runs once, when the client leaves, and the response reads as open until then', {
  skip: !linux,
}, async (t) => {
  const { app, streams } = await watchedServer(t);
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await until(() => parseEventStream(client.body).events.length === 1, 20_000, 'the first event');
  const [stream] = streams;
  assert.deepEqual(stream.openWhenAdded, [false, false, false, true, true], 'open when the listeners were added');
  stream.endpoint.send('still open');
  await until(() => parseEventStream(client.body).events.length === 2, 10_000, 'the second event');
  assert.deepEqual(stream.calls, {}, 'nothing ran while the stream was open');
  client.destroy();
  const closes = [
    'socket close, before',
    'on-finished, before',
    'request close, after',
    'response close, after',
    'socket close, after',
    'on-finished, after',
    'on-finished request, after',
  ];
  await until(() => closes.every((name) => stream.calls[name] === 1), 10_000, 'every close listener');
  // The client left: the response never finished, as with Node's own.
  await until(() => stream.endpoint.closed, 10_000, 'the endpoint closed');
  assert.deepEqual(Object.keys(stream.calls).sort(), [...closes].sort());
  assert.ok(Object.values(stream.calls).every((n) => n === 1));
});

test('adopted: letting go of connections leaves Error.stackTraceLimit as the application set it, and its errors keep their stacks', {
  skip: !linux,
}, async (t) => {
  const limit = Error.stackTraceLimit;
  t.after(() => {
    Error.stackTraceLimit = limit;
  });
  Error.stackTraceLimit = 17;
  const { app } = await adoptingServer(t);
  const adoptedBefore = diagnostics().adopted;
  const clients = Array.from({ length: 20 }, () => RawClient.connect(app.port));
  t.after(() => {
    for (const c of clients) c.destroy();
  });
  await until(() => diagnostics().adopted - adoptedBefore === clients.length, 20_000, 'every connection adopted');
  // Node has handled each let-go socket's close (its own listener destroys
  // the request, made stackless) once a close phase of the loop has passed:
  // between two check phases.
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(Error.stackTraceLimit, 17);
  assert.match(new Error('mine').stack, /\n\s+at /);
});

test('adopted with listeners for the end: a stream the server ends cleanly finishes its response (finish, then close; writableFinished)', {
  skip: !linux,
}, async (t) => {
  const { app, streams, seen } = await watchedServer(t);
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await until(() => parseEventStream(client.body).events.length === 1, 20_000, 'the first event');
  const [stream] = streams;
  stream.endpoint.close();
  await until(() => stream.calls['response finish, after'] === 1, 10_000, 'the finish listener');
  await until(() => stream.calls['request close, after'] === 1, 10_000, 'the close listeners');
  assert.equal(stream.calls['response finish, before'], 1);
  assert.ok(
    seen.indexOf('response finish, after') < seen.indexOf('response close, after'),
    `finish before close: ${seen.join(', ')}`,
  );
  assert.equal(stream.calls.removed, undefined);
});

test('a Node whose HTTP internals adoption does not know (its socket listener renamed): not adopted, a warning once, and the stream works on the direct path', {
  skip: !linux,
}, async (t) => {
  const warnings = [];
  const onWarning = (w) => w.code === 'ERR_SSE_NOT_ADOPTED' && warnings.push(w);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const { app, endpoints, requestCloses } = await adoptingServer(
    t,
    {},
    {
      // As a Node release that renamed it would: Node's own close listener
      // of the socket, under another name.
      onRequest: (req) => {
        for (const listener of req.socket.rawListeners('close')) {
          if (!/socketOnClose/.test(listener.name)) continue;
          req.socket.removeListener('close', listener);
          req.socket.on('close', function renamedByNode(...args) {
            return listener.apply(this, args);
          });
        }
      },
    },
  );
  const refusedBefore = diagnostics().notAdopted.nodeInternals ?? 0;
  const adoptedBefore = diagnostics().adopted;
  const clients = [RawClient.connect(app.port), RawClient.connect(app.port)];
  t.after(() => {
    for (const c of clients) c.destroy();
  });
  await until(() => (diagnostics().notAdopted.nodeInternals ?? 0) === refusedBefore + 2, 20_000, 'refused');
  assert.equal(diagnostics().adopted, adoptedBefore);
  for (const endpoint of endpoints) endpoint.send('still served');
  await until(() => clients.every((c) => parseEventStream(c.body).events.length === 1), 10_000, 'the events');
  await until(() => warnings.length === 1, 5000, 'the warning');
  assert.match(warnings[0].message, /not adopted/);
  // Node's own handling, and the application's cleanup, as ever.
  for (const c of clients) c.destroy();
  await until(() => requestCloses.length === 2, 10_000, 'the request close listeners');
  assert.equal(warnings.length, 1, 'said once');
});

test('a bad adopt option is a TypeError naming it', async (t) => {
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

test('adoption is the default: a plain HTTP/1.1 connection is adopted with no option, not with adopt: false; where it cannot be, diagnostics say why (HTTP/2, a wrapped response, a web Response); NATIVE_SSE_ADOPT=0 turns it off for the process', {
  skip: !linux,
}, async (t) => {
  const why = (reason) => diagnostics().notAdopted[reason] ?? 0;
  const served = [];
  const app = await serve((req, res) => {
    const options = req.url === '/off' ? { adopt: false } : {};
    if (req.url === '/wrapped') {
      // As compression middleware does.
      const write = res.write;
      res.write = function (...args) {
        return write.apply(this, args);
      };
    }
    const endpoint = new EventEndpoint(req, res, { keepAlive: 0, ...options });
    served.push(endpoint);
    endpoint.send(req.url);
  });
  t.after(() => {
    for (const endpoint of served) endpoint.close();
    app.close();
  });
  // The suite may be run with the switch off (NATIVE_SSE_ADOPT=0).
  const byDefault = process.env.NATIVE_SSE_ADOPT === '0' ? 0 : 1;
  const adoptedBefore = diagnostics().adopted;
  const plain = RawClient.connect(app.port);
  t.after(() => plain.destroy());
  await until(() => diagnostics().adopted === adoptedBefore + byDefault, 10_000, 'the default adopts');
  await until(() => parseEventStream(plain.body).events.length === 1, 10_000, 'its event');

  const wrappedBefore = why('wrapped');
  const off = RawClient.connect(app.port, { path: '/off' });
  const wrapped = RawClient.connect(app.port, { path: '/wrapped' });
  t.after(() => {
    off.destroy();
    wrapped.destroy();
  });
  await until(
    () => [off, wrapped].every((c) => parseEventStream(c.body).events.length === 1),
    10_000,
    'the other streams',
  );
  await until(() => why('wrapped') === wrappedBefore + byDefault, 10_000, 'the wrapped response counted');
  assert.equal(diagnostics().adopted, adoptedBefore + byDefault, 'adopt: false and a wrapped response stay with Node');

  const http2Before = why('http2');
  const h2 = http2.createServer((req, res) => served.push(new EventEndpoint(req, res, { keepAlive: 0 })));
  await new Promise((resolve) => h2.listen(0, '127.0.0.1', resolve));
  t.after(() => h2.close());
  const session = http2.connect(`http://127.0.0.1:${h2.address().port}`);
  t.after(() => session.close());
  const stream = session.request({ ':path': '/' });
  await new Promise((resolve) => stream.once('response', resolve));
  await until(() => why('http2') === http2Before + byDefault, 10_000, 'the HTTP/2 stream counted');
  stream.close();

  const webBefore = why('webResponse');
  const web = new EventEndpoint(new Request('http://localhost/events'));
  web.close();
  assert.equal(why('webResponse'), webBefore + byDefault);

  // The process-wide switch, in a process of its own.
  const script = `
    const http = require('node:http');
    const { EventEndpoint, diagnostics } = require('native-sse');
    const server = http.createServer((req, res) => {
      const endpoint = new EventEndpoint(req, res, { keepAlive: 0 });
      // Once Rust writes to the socket (from a flush after the first, as
      // the direct path does without adoption), or has adopted it.
      const check = setInterval(() => {
        endpoint.send('tick');
        const { adopted, directSockets } = diagnostics();
        if (adopted + directSockets === 0) return;
        clearInterval(check);
        process.stdout.write(JSON.stringify({ adopted, direct: directSockets }), () => process.exit(0));
      }, 5);
    });
    server.listen(0, '127.0.0.1', () => http.get('http://127.0.0.1:' + server.address().port + '/', (res) => res.resume()));
  `;
  const printed = await new Promise((resolve, reject) =>
    execFile(process.execPath, ['-e', script], { env: { ...process.env, NATIVE_SSE_ADOPT: '0' } }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
  assert.deepEqual(
    JSON.parse(printed),
    { adopted: 0, direct: 1 },
    'NATIVE_SSE_ADOPT=0: on the direct path, not adopted',
  );
});
