// The direct path: for plain HTTP/1.1 on TCP, Rust writes each stream's
// bytes to its own duplicate of the socket's descriptor (src/io/direct.rs).
// These tests hold it to its safety properties under churn and resets, with
// clients that stop reading, and at the end of a stream; every client's
// bytes are decoded (chunked framing, then the event stream) and checked.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { EventEndpoint, Channel, diagnostics } from 'native-sse';
import { serve, until, tick, RawClient, parseEventStream } from './helpers.mjs';

/** The events of a client's body so far (complete events only). */
function eventsOf(client) {
  return parseEventStream(client.body).events;
}

/** Checks that a client got only its own events, numbered from 0 without a
 * gap, and the channel's, in increasing order. */
function checkOwn(id, events) {
  let own = 0;
  let shared = -1;
  for (const event of events) {
    const [who, n] = event.data.split(':');
    if (who === 'all') {
      assert.ok(Number(n) > shared, `client ${id}: broadcast ${n} after ${shared}`);
      shared = Number(n);
    } else {
      assert.equal(who, String(id), `client ${id} got client ${who}'s event`);
      assert.equal(Number(n), own, `client ${id}: event ${n} where ${own} was due`);
      own++;
    }
  }
  return own;
}

/**
 * One endpoint (made with `options`) and its raw client, once Rust writes
 * to the client's socket; everything closes after the test.
 */
async function directStream(t, options) {
  let endpoint;
  let response;
  const app = await serve((req, res) => {
    response = res;
    endpoint = new EventEndpoint(req, res, { keepAlive: 0, ...options });
  });
  const before = diagnostics().directSockets;
  const adoptedBefore = diagnostics().adopted;
  const client = RawClient.connect(app.port, { path: '/' });
  // The next test counts direct sockets: this one's is gone before it starts.
  t.after(async () => {
    client.destroy();
    app.close();
    await until(() => endpoint.closed, 10_000, 'the endpoint to close after its test');
  });
  await client.waitFor(': ok');
  // The opening went out through the response, which held it (with the
  // headers) until the next tick: Rust may not take a socket then. (One to
  // adopt has them written out at once, and is taken then.)
  if (diagnostics().adopted === adoptedBefore)
    assert.equal(diagnostics().directSockets, before, 'no socket goes to Rust while Node holds its bytes');
  await endpoint.send('warm-up');
  await until(() => diagnostics().directSockets === before + 1, 2000, 'the direct path');
  return { endpoint, response, client };
}

test('thousands of connections opened, reset mid-stream and replaced under a ticker: each gets exactly its own events, in order', async (t) => {
  const channel = new Channel({ historySize: 0 });
  const live = new Map();
  const app = await serve((req, res) => {
    const id = Number(req.url.slice(1));
    const endpoint = new EventEndpoint(req, res, { keepAlive: 0 });
    channel.subscribe(endpoint);
    const state = { endpoint, sent: 0 };
    live.set(id, state);
    endpoint.addEventListener('close', () => live.delete(id));
  });
  t.after(() => app.close());
  let broadcast = 0;
  let sawDirect = 0;
  const ticker = setInterval(() => {
    for (const [id, state] of live) {
      if (!state.endpoint.closed) void state.endpoint.send(`${id}:${state.sent++}`).catch(() => {});
    }
    channel.broadcast(`all:${broadcast++}`);
    sawDirect = Math.max(sawDirect, diagnostics().directSockets);
  }, 4);
  t.after(() => clearInterval(ticker));

  // A client's life is counted from its headers, not from connect(): how
  // fast a machine accepts and answers connections is not what this tests.
  // One client in ten is reset as it connects, before its request could be
  // answered; the others live until they have received some events of
  // their own (1 to 5), then are reset (RST) or closed.
  const TOTAL = 2000;
  const AT_ONCE = 150;
  const wanted = (id) => 1 + (id % 5);
  let reset = 0;
  let received = 0;
  const life = async (id) => {
    const client = RawClient.connect(app.port, { path: `/${id}` });
    const early = id % 10 === 9;
    try {
      if (early) {
        await new Promise((resolve) => client.socket.once('connect', resolve));
      } else {
        await until(() => client.head !== null, 60_000, `client ${id}'s headers`);
        await until(
          () => checkOwn(id, eventsOf(client)) >= wanted(id),
          60_000,
          `client ${id}'s first ${wanted(id)} events, after its headers`,
        );
      }
    } finally {
      if (early || id % 3 === 0) {
        client.socket.resetAndDestroy();
        reset++;
      } else {
        client.destroy();
      }
    }
    // Whatever arrived parses into this client's own events, in order.
    const own = checkOwn(id, eventsOf(client));
    received += own;
    return { id, own, answered: client.head !== null };
  };
  const lives = [];
  const running = new Set();
  for (let id = 0; id < TOTAL; id++) {
    const one = life(id).finally(() => running.delete(one));
    running.add(one);
    lives.push(one);
    if (running.size >= AT_ONCE) await Promise.race(running);
  }
  const outcomes = await Promise.all(lives);
  const answered = outcomes.filter((o) => o.answered);
  t.diagnostic(
    `${TOTAL} connections (${answered.length} answered), ${reset} reset, ${received} events of their own received, up to ${sawDirect} sockets written by Rust at once`,
  );
  assert.ok(answered.length >= TOTAL - TOTAL / 10, `${answered.length} answered`);
  // Each client that received its headers got its events.
  for (const { id, own } of answered) assert.ok(own >= wanted(id), `client ${id} got ${own} events of its own`);
  assert.ok(reset > 700, `${reset} resets`);
  assert.ok(sawDirect > 0, 'Rust wrote to sockets directly');
  await until(() => live.size === 0 && diagnostics().directSockets === 0, 30_000, 'every stream to close');
});

test('a client that stops reading fills its socket; Rust keeps its bytes, counts them, and sends them once it reads again', async (t) => {
  const { endpoint, client } = await directStream(t, { highWaterMark: 64 * 1024, maxBufferedBytes: 16 << 20 });
  client.socket.pause();
  const payload = 'x'.repeat(1000);
  const total = 12_000; // about 12 MB: more than the socket buffers hold
  let sent = 0;
  let waited = 0;
  let maxBuffered = 0;
  const producer = (async () => {
    for (; sent < total; sent++) {
      const promise = endpoint.send(`${sent}:${payload}`);
      maxBuffered = Math.max(maxBuffered, endpoint.bufferedAmount);
      if (endpoint.bufferedAmount >= 64 * 1024) waited++;
      await promise;
    }
  })();
  await until(() => maxBuffered >= 64 * 1024, 30_000, 'bufferedAmount to count what Rust holds, up to highWaterMark');
  await tick(300);
  assert.ok(sent < total, 'the producer is held back while the client does not read');
  assert.ok(maxBuffered < 4 << 20, `…and stays near highWaterMark: ${maxBuffered}`);
  client.socket.resume();
  await producer;
  assert.ok(waited > 0);
  await until(() => client.raw.length > total * 1000 && eventsOf(client).length === total + 1, 30_000, 'every event');
  const events = eventsOf(client);
  assert.equal(events[0].data, 'warm-up');
  for (let i = 0; i < total; i++) assert.equal(events[i + 1].data, `${i}:${payload}`);
});

test('close() and close(true) after direct writes, with bytes still unwritten: a well-formed chunked ending after every event', async (t) => {
  const endpoints = [];
  const app = await serve((req, res) => {
    endpoints.push(new EventEndpoint(req, res, { keepAlive: 0, maxBufferedBytes: 32 << 20 }));
  });
  t.after(() => app.close());
  for (const noReconnect of [false, true]) {
    const client = RawClient.connect(app.port, { path: '/' });
    t.after(() => client.destroy());
    await client.waitFor(': ok');
    const endpoint = endpoints.at(-1);
    await endpoint.send('warm-up');
    await until(() => diagnostics().directSockets >= 1, 2000, 'the direct path');
    client.socket.pause();
    const payload = 'y'.repeat(4000);
    for (let i = 0; i < 2000; i++) void endpoint.send(`${i}:${payload}`);
    await tick(200); // flushed: the socket is full, Rust holds the rest
    assert.ok(endpoint.bufferedAmount > 0);
    endpoint.close(noReconnect);
    client.socket.resume();
    await until(() => client.ended, 20_000, 'the chunked ending');
    assert.ok(client.raw.subarray(-5).equals(Buffer.from('0\r\n\r\n')), 'the last chunk is the end');
    const events = eventsOf(client);
    const data = events.filter((e) => e.type === 'message').map((e) => e.data);
    // close() sends everything; close(true) drops what was still queued
    // (not the chunk already on its way), then says goodbye.
    if (noReconnect) assert.equal(events.at(-1).type, 'native-sse:stop');
    else assert.equal(data.length, 2001);
    for (let i = 0; i < data.length - 1; i++) assert.equal(data[i + 1], `${i}:${payload}`);
  }
});

test('an endpoint whose socket is reset while Rust holds its bytes closes once, and its slot serves the next client cleanly', async (t) => {
  const endpoints = [];
  const app = await serve((req, res) => {
    endpoints.push(new EventEndpoint(req, res, { keepAlive: 0, maxBufferedBytes: 32 << 20 }));
  });
  t.after(() => app.close());
  const first = RawClient.connect(app.port, { path: '/' });
  await first.waitFor(': ok');
  const stuck = endpoints[0];
  let closes = 0;
  stuck.addEventListener('close', () => closes++);
  await stuck.send('before');
  first.socket.pause();
  for (let i = 0; i < 2000; i++) void stuck.send('z'.repeat(4000)).catch(() => {});
  await tick(100);
  first.socket.resetAndDestroy();
  await until(() => stuck.closed, 5000, 'the close');
  await tick(50);
  assert.equal(closes, 1);
  // The next stream may get the same slot, and its socket the same
  // descriptor number: it gets its own bytes only.
  const second = RawClient.connect(app.port, { path: '/' });
  t.after(() => second.destroy());
  await second.waitFor(': ok');
  const next = endpoints[1];
  for (let i = 0; i < 50; i++) await next.send(`next ${i}`);
  await until(() => eventsOf(second).length === 50, 5000, 'the events');
  assert.deepEqual(
    eventsOf(second).map((e) => e.data),
    Array.from({ length: 50 }, (_, i) => `next ${i}`),
  );
  assert.ok(!second.body.includes('zzz'));
  next.close();
  await until(() => second.ended, 5000);
  // Nothing of the first socket was written after its reset by us: the
  // second body holds exactly its opening, its events and the end.
  assert.equal(diagnostics().directSockets, 0);
});

test("HTTP/1.1 over a raw socket with pipelined requests: the stream is the connection's current response, and the next response follows its end (adopt: false); a stream that may be adopted says Connection: close, and the client sends the next request again", async (t) => {
  let count = 0;
  const app = await serve((req, res) => {
    if (req.url === '/events' || req.url === '/adoptable') {
      const endpoint = new EventEndpoint(req, res, { keepAlive: 0, adopt: req.url === '/adoptable' });
      count++;
      (async () => {
        for (let i = 0; i < 20; i++) await endpoint.send(`e${i}`);
        endpoint.close();
      })();
    } else {
      res.end('plain');
    }
  });
  t.after(() => app.close());
  const socket = net.connect(app.port, '127.0.0.1');
  t.after(() => socket.destroy());
  let raw = '';
  socket.on('data', (data) => (raw += data));
  socket.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\nGET /plain HTTP/1.1\r\nHost: x\r\n\r\n');
  await until(() => raw.includes('plain'), 5000, 'the second response');
  const [first, second] = raw.split('HTTP/1.1 200 OK').slice(1);
  assert.ok(first.endsWith('0\r\n\r\n'), 'the stream ended with its last chunk');
  for (let i = 0; i < 20; i++) assert.ok(first.includes(`data: e${i}\n\n`));
  assert.ok(second.endsWith('plain'));
  assert.equal(count, 1);
  assert.match(first, /\r\nConnection: keep-alive\r\n/i);

  // A stream that may be adopted (the default) does not know yet that a
  // request follows: it says the connection closes when it ends, and it
  // does, after its last chunk; the request that followed is not answered
  // there (RFC 9112: the client sends it again).
  const adoptable = net.connect(app.port, '127.0.0.1');
  t.after(() => adoptable.destroy());
  let bytes = '';
  let closed = false;
  adoptable.on('data', (data) => (bytes += data));
  adoptable.on('close', () => (closed = true));
  adoptable.write('GET /adoptable HTTP/1.1\r\nHost: x\r\n\r\nGET /plain HTTP/1.1\r\nHost: x\r\n\r\n');
  await until(() => closed, 10_000, 'the connection to close after the stream');
  assert.match(bytes, /\r\nConnection: close\r\n/i);
  assert.ok(bytes.endsWith('0\r\n\r\n'), 'the stream ended with its last chunk');
  for (let i = 0; i < 20; i++) assert.ok(bytes.includes(`data: e${i}\n\n`));
  assert.equal(bytes.split('HTTP/1.1 200 OK').length, 2, 'one response');
});

test("res.write() and res.end() behind the endpoint while Rust holds bytes: Node's bytes follow Rust's, whole", async (t) => {
  const { endpoint, response, client } = await directStream(t, { maxBufferedBytes: 32 << 20 });
  client.socket.pause();
  const payload = 'w'.repeat(4000);
  for (let i = 0; i < 1000; i++) void endpoint.send(`${i}:${payload}`);
  await tick(200); // Rust holds what the full socket did not take
  response.write('data: written behind the endpoint\n\n');
  response.end();
  assert.equal(diagnostics().directSockets, 0, 'Node has the socket back');
  client.socket.resume();
  await until(() => client.ended, 20_000, 'the chunked ending');
  const data = eventsOf(client).map((e) => e.data);
  assert.equal(data.length, 1002);
  for (let i = 0; i < 1000; i++) assert.equal(data[i + 1], `${i}:${payload}`);
  assert.equal(data.at(-1), 'written behind the endpoint');
  assert.ok(client.raw.subarray(-5).equals(Buffer.from('0\r\n\r\n')));
  await until(() => endpoint.closed, 5000, 'the endpoint to close');
});

test('a socket with an idle timeout stays on the JavaScript path, whose writes keep it alive', async (t) => {
  let endpoint;
  const app = await serve((req, res) => {
    req.socket.setTimeout(1000, () => req.socket.destroy());
    endpoint = new EventEndpoint(req, res, { keepAlive: 0 });
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port, { path: '/' });
  t.after(() => client.destroy());
  await client.waitFor(': ok');
  for (let i = 0; i < 20; i++) {
    await endpoint.send(`tick ${i}`);
    await tick(100);
  }
  assert.equal(diagnostics().directSockets, 0);
  assert.equal(endpoint.closed, false, 'active for two seconds under a one-second idle timeout');
  await until(() => eventsOf(client).length === 20, 5000, 'the 20 events');
});

test('close() and close(true) towards a client that never reads release the socket within closeTimeout', async (t) => {
  const sockets = [];
  const endpoints = [];
  const app = await serve((req, res) => {
    sockets.push(req.socket);
    endpoints.push(new EventEndpoint(req, res, { keepAlive: 0, closeTimeout: 300, maxBufferedBytes: 64 << 20 }));
  });
  t.after(() => app.close());
  for (const noReconnect of [false, true]) {
    const client = RawClient.connect(app.port, { path: '/' });
    t.after(() => client.destroy());
    await client.waitFor(': ok');
    const endpoint = endpoints.at(-1);
    const socket = sockets.at(-1);
    client.socket.pause(); // and never reads again
    const payload = 'n'.repeat(8000);
    for (let i = 0; i < 4000; i++) void endpoint.send(payload).catch(() => {});
    await tick(100);
    assert.ok(endpoint.bufferedAmount > 0, 'bytes wait for the client');
    const closed = performance.now();
    endpoint.close(noReconnect);
    // Node's socket, and the connection Rust finishes if it adopted it.
    await until(() => socket.destroyed && diagnostics().adoptedConnections === 0, 10_000, 'the socket to be released');
    const took = performance.now() - closed;
    // Not before closeTimeout; the upper bound is for a loaded machine (the
    // figure itself is the timer's).
    assert.ok(took >= 250 && took < 5000, `released after ${took} ms (closeTimeout 300)`);
    assert.equal(diagnostics().directSockets, 0, 'no descriptor held');
  }
});

test('close(true) drops what is still queued, so the farewell frame goes out first', async (t) => {
  const { endpoint, client } = await directStream(t, { maxBufferedBytes: 64 << 20 });
  client.socket.pause();
  const payload = 's'.repeat(8000);
  // Over several turns: a chunk on its way to the full socket, and more
  // queued behind it.
  for (let turn = 0; turn < 20; turn++) {
    for (let i = 0; i < 100; i++) void endpoint.send(`${turn * 100 + i}:${payload}`).catch(() => {});
    await tick(10);
  }
  endpoint.close(true);
  client.socket.resume();
  await until(() => client.ended, 10_000, 'the end');
  const events = eventsOf(client);
  assert.equal(events.at(-1).type, 'native-sse:stop');
  const delivered = events.filter((e) => e.type === 'message').length;
  assert.ok(delivered < 2000, `${delivered} of 2000 queued events were still sent`);
  // What did arrive is a prefix, in order, whole.
  events.slice(1, -1).forEach((e, i) => {
    assert.equal(e.data, `${i}:${payload}`);
  });
});

test('a client whose socket takes nothing for stallTimeout while bytes wait is cut off as a slow consumer; one that reads slowly is not', async (t) => {
  // The slow one reads a little every 100 ms: ten times within the stall
  // timeout, so that a loaded machine's late timers do not make it a stall.
  const stuck = await directStream(t, { stallTimeout: 1000, maxBufferedBytes: 64 << 20 });
  const slow = await directStream(t, { stallTimeout: 1000, maxBufferedBytes: 64 << 20 });
  const reasons = [];
  stuck.endpoint.addEventListener('close', (e) => reasons.push(e.reason));
  stuck.client.socket.pause();
  // The slow one reads a little every 100 ms.
  slow.client.socket.pause();
  const reader = setInterval(() => {
    slow.client.socket.resume();
    setTimeout(() => slow.client.socket.pause(), 5);
  }, 100);
  t.after(() => clearInterval(reader));
  const payload = 'q'.repeat(16000);
  const started = performance.now();
  while (!stuck.endpoint.closed && performance.now() - started < 30_000) {
    void stuck.endpoint.send(payload).catch(() => {});
    void slow.endpoint.send(payload).catch(() => {});
    await tick(5);
  }
  assert.deepEqual(reasons, ['slow consumer']);
  assert.equal(slow.endpoint.closed, false, 'progress, however slow, is not a stall');
});

test('a client that reads steadily but slowly is never cut off, however long a third of its socket buffer takes to drain', async (t) => {
  // Linux says a socket is writable again only once a third of its send
  // buffer is free: a reader of 16 KiB per 100 ms sees few such wake-ups.
  // Progress is what the kernel took, not what Rust last wrote.
  let endpoint;
  const app = await serve((req, res) => {
    endpoint = new EventEndpoint(req, res, { keepAlive: 0, stallTimeout: 1000, maxBufferedBytes: 256 << 20 });
  });
  const received = [];
  let bytes = 0;
  let reading = 1 << 30;
  // At most one 16 KiB read per resume: `onread` reads into this buffer.
  const socket = net.connect({
    port: app.port,
    host: '127.0.0.1',
    onread: {
      buffer: Buffer.alloc(16 * 1024),
      callback(n, buffer) {
        received.push(Buffer.from(buffer.subarray(0, n)));
        bytes += n;
        return --reading > 0;
      },
    },
  });
  socket.on('error', () => {});
  t.after(async () => {
    socket.destroy();
    app.close();
    await until(() => endpoint?.closed, 10_000, 'the endpoint to close after its test');
  });
  socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${app.port}\r\n\r\n`);
  await until(() => endpoint !== undefined && bytes > 0, 5000, 'the stream to open');
  await endpoint.send('warm-up');
  await until(() => diagnostics().directSockets === 1, 5000, 'the direct path');
  const reasons = [];
  endpoint.addEventListener('close', (e) => reasons.push(e.reason));
  reading = 1;
  const reader = setInterval(() => {
    reading = 1;
    socket.resume();
  }, 100);
  t.after(() => clearInterval(reader));
  const payload = 'r'.repeat(16000);
  let sent = 0;
  // Six stall timeouts of a reader slower than the producer: its bytes pile
  // up (under its cap) while it reads.
  const started = performance.now();
  while (!endpoint.closed && performance.now() - started < 6000) {
    for (let i = 0; i < 8; i++) void endpoint.send(`${sent++}:${payload}`).catch(() => {});
    await tick(10);
  }
  assert.deepEqual(reasons, [], 'a reader is not a stalled client');
  assert.ok(endpoint.bufferedAmount > 0, 'bytes waited for the reader all along');
  // And it gets every event, in order, once it reads at full speed.
  clearInterval(reader);
  reading = 1 << 30;
  socket.resume();
  const events = () => {
    const client = new RawClient();
    client.raw = Buffer.concat(received);
    received.length = 0;
    received.push(client.raw);
    return parseEventStream(client.body).events;
  };
  await until(() => events().length >= sent + 1, 60_000, `all ${sent} events`);
  events()
    .slice(1)
    .forEach((e, i) => {
      assert.equal(e.data, `${i}:${payload}`);
    });
});

test('a socket that takes nothing is cut off after stallTimeout on its own deadline, though nothing else is sent', async (t) => {
  const { endpoint, client } = await directStream(t, { stallTimeout: 1000, maxBufferedBytes: 64 << 20 });
  const reasons = [];
  endpoint.addEventListener('close', (e) => reasons.push(e.reason));
  client.socket.pause(); // and never reads again
  const payload = 'z'.repeat(16000);
  for (let i = 0; i < 2000; i++) void endpoint.send(payload).catch(() => {});
  // One burst, then a quiet server: no flush runs after the socket filled.
  await until(() => endpoint.bufferedAmount > 0 && diagnostics().directSockets === 1, 5000, 'a full socket');
  const quietSince = performance.now();
  await until(() => endpoint.closed, 15_000, 'the stalled client to be cut off');
  assert.deepEqual(reasons, ['slow consumer']);
  assert.ok(performance.now() - quietSince >= 900, 'not before stallTimeout');
});

test('an idle timeout set on the socket after the endpoint took it moves the stream back to the JavaScript path, and never ends a stream that writes', async (t) => {
  let endpoint;
  let request;
  const adoptedBefore = diagnostics().adopted;
  const app = await serve((req, res) => {
    request = req;
    endpoint = new EventEndpoint(req, res, { keepAlive: 0 });
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port, { path: '/' });
  t.after(() => client.destroy());
  await client.waitFor(': ok');
  await endpoint.send('warm-up');
  await until(() => diagnostics().directSockets === 1, 5000, 'the direct path');
  // Adopted (adoption as the default, NATIVE_SSE_ADOPT=1): Node has let go
  // of the socket, so an idle timeout given to it now does nothing.
  const adopted = diagnostics().adopted > adoptedBefore;
  request.setTimeout(1000); // no callback: Node destroys an idle socket
  assert.equal(
    diagnostics().directSockets,
    adopted ? 1 : 0,
    adopted ? 'still adopted' : 'back to the JavaScript path at once',
  );
  // Three idle timeouts of a busy stream.
  for (let i = 0; i < 30; i++) {
    await endpoint.send(`busy ${i}`);
    await tick(100);
  }
  assert.equal(endpoint.closed, false, 'a stream that writes is not idle');
  await until(() => eventsOf(client).length === 31, 5000, 'every event');
  eventsOf(client)
    .slice(1)
    .forEach((e, i) => {
      assert.equal(e.data, `busy ${i}`);
    });
  if (adopted) return;
  // The timeout is Node's again: a quiet stream is ended by it.
  await until(() => endpoint.closed, 10_000, 'the idle timeout');
});
