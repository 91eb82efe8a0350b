// The write path: backpressure, the slow-consumer cap, keep-alive, coalescing.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { EventEndpoint, diagnostics } from 'native-sse';
import { serve, RawClient, openEndpoint, until, tick, parseEventStream } from './helpers.mjs';

const KIB = 1024;
const frame = 'x'.repeat(KIB - 10);

const endpointWithRawClient = openEndpoint;

test('an awaiting producer waits for a client that does not read; memory stays bounded', async (t) => {
  const highWaterMark = 16 * KIB;
  const { endpoint, response, client } = await endpointWithRawClient(t, { highWaterMark, keepAlive: 0 });
  client.socket.pause();

  let sent = 0;
  let stalled = false;
  let maxBuffered = 0;
  // Bounded: 64 MiB at most, far more than loopback socket buffers hold.
  while (sent < 64 * KIB) {
    const done = endpoint.send(frame, String(sent));
    const settled = await Promise.race([done.then(() => true), tick(300).then(() => false)]);
    maxBuffered = Math.max(maxBuffered, endpoint.bufferedAmount);
    if (!settled) {
      stalled = true;
      break;
    }
    sent++;
  }
  assert.ok(stalled, 'send() stopped resolving while the client read nothing');
  // What waits in Rust stays under the mark; the response holds what it
  // takes before it reports backpressure (its own high-water mark: 16 KiB
  // on Node, 64 KiB under Bun and Deno), plus a frame or two.
  const bound = highWaterMark + response.writableHighWaterMark + 2 * KIB;
  assert.ok(maxBuffered <= bound, `bufferedAmount peaked at ${maxBuffered}, over ${bound}`);
  assert.equal(endpoint.closed, false);

  // Once the client reads, everything arrives, in order.
  const total = sent + 1;
  client.socket.resume();
  for (let i = total; i < total + 10; i++) await endpoint.send(frame, String(i));
  await until(() => client.body.includes(`id: ${total + 9}\n`), 10_000, 'the backlog');
  const ids = parseEventStream(client.body).events.map((e) => Number(e.lastEventId));
  assert.deepEqual(
    ids,
    Array.from({ length: total + 10 }, (_, i) => i),
  );
});

test('a producer that does not wait cuts a non-reading client off as a slow consumer', async (t) => {
  const maxBufferedBytes = 256 * KIB;
  const { endpoint, client } = await endpointWithRawClient(t, { maxBufferedBytes, keepAlive: 0 });
  client.socket.pause();
  const closes = [];
  endpoint.addEventListener('close', (ev) => closes.push(ev));

  const results = [];
  // What waits in Rust for this client: its cap (queued, and refused by
  // its socket), beside what an adopted connection's writer has not tried
  // yet, which all the writers together hold at most a quarter of the
  // budget of (one flush may hand over one cap's worth past it).
  const bound = 2 * maxBufferedBytes + diagnostics().memoryBudget / 4;
  for (let round = 0; round < 2000 && !endpoint.closed; round++) {
    for (let i = 0; i < 100; i++) results.push(endpoint.send(frame));
    assert.ok(endpoint.bufferedAmount <= bound, `bufferedAmount ${endpoint.bufferedAmount}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.equal(endpoint.closed, true, 'the client was cut off');
  await until(() => closes.length === 1);
  assert.equal(closes[0].reason, 'slow consumer');
  assert.equal(closes[0].wasClean, false);
  client.socket.resume(); // a paused socket does not see its end
  await until(() => client.closed, 5000, 'the connection to drop');
  const outcomes = await Promise.allSettled(results);
  const rejected = outcomes.filter((o) => o.status === 'rejected');
  assert.ok(rejected.length >= 1);
  assert.equal(rejected[0].reason.code, 'ERR_SSE_SLOW_CONSUMER');
  await assert.rejects(endpoint.send('after'), { code: 'ERR_SSE_SLOW_CONSUMER' });
  await tick(20);
  assert.equal(closes.length, 1, 'one close event');
});

test('keepAlive: an idle client gets a comment about every period, a busy one none', async (t) => {
  const idle = await endpointWithRawClient(t, { keepAlive: 200 });
  const busy = await endpointWithRawClient(t, { keepAlive: 200 });
  // The busy stream sends every 50 ms; a loaded machine may hold the ticker
  // back longer than the period, and such a gap may rightly get a comment.
  let last = performance.now();
  let gaps = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    if (now - last >= 150) gaps++;
    last = now;
    busy.endpoint.send('tick');
  }, 50);
  t.after(() => clearInterval(ticker));
  const comments = (text) => text.split('\n').filter((line) => line === ':').length;
  const start = performance.now();
  await until(() => comments(idle.client.body) >= 4, 20_000, 'four keep-alive comments');
  const elapsed = performance.now() - start;
  // Four comments, each after 200 ms of silence: never sooner than that.
  assert.ok(elapsed >= 4 * 200 - 50, `four keep-alive comments in ${elapsed} ms`);
  assert.ok(
    comments(busy.client.body) <= gaps,
    `${comments(busy.client.body)} comments on a busy stream, ${gaps} gaps in its ticks`,
  );
  assert.ok(parseEventStream(busy.client.body).events.length >= 4);
  // Comments never disturb events.
  assert.equal(parseEventStream(idle.client.body).events.length, 0);
});

test('keepAlive: 0 turns comments off', async (t) => {
  const { client } = await endpointWithRawClient(t, { keepAlive: 0 });
  await tick(400);
  assert.equal(client.body, ': ok\n\n');
});

test('a server with idle keep-alive endpoints exits once they and it are closed', async () => {
  const script = `
    const http = require('node:http');
    const net = require('node:net');
    const { EventEndpoint } = require('native-sse');
    const native = require('./binding.js');
    const endpoints = [];
    const server = http.createServer((req, res) => {
      endpoints.push(new EventEndpoint(req, res, { keepAlive: 100 }));
      if (endpoints.length === 3) setTimeout(stop, 300);
    }).listen(0, '127.0.0.1', () => {
      for (let i = 0; i < 3; i++) {
        const socket = net.connect(server.address().port, '127.0.0.1');
        socket.write('GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n');
        socket.on('error', () => {});
        socket.on('data', () => {});
      }
    });
    function stop() {
      for (const endpoint of endpoints) endpoint.close();
      server.close();
      server.closeAllConnections();
      setImmediate(() => console.log(JSON.stringify({
        timer: native.figures().keepAliveTimer,
        streams: native.figures().openStreams,
      })));
    }
  `;
  const child = spawn(process.execPath, ['-e', script], {
    cwd: new URL('..', import.meta.url),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (data) => (out += data));
  const exit = once(child, 'exit');
  const timeout = tick(5000).then(() => 'timeout');
  const result = await Promise.race([exit, timeout]);
  if (result === 'timeout') child.kill();
  assert.notEqual(result, 'timeout', 'the process exited by itself');
  assert.deepEqual(JSON.parse(out), { timer: false, streams: 0 });
});

test('frames of many clients coalesced in one turn arrive complete and in order', async (t) => {
  const endpoints = [];
  const app = await serve((req, res) => {
    endpoints.push(new EventEndpoint(req, res));
  });
  t.after(() => app.close());
  const clients = Array.from({ length: 5 }, () => RawClient.connect(app.port));
  for (const client of clients) t.after(() => client.destroy());
  await until(() => endpoints.length === 5);
  await Promise.all(clients.map((client) => client.waitFor(': ok')));
  const chunksBefore = clients.map((client) => client.chunks.length);
  for (let turn = 0; turn < 3; turn++) {
    for (let i = 0; i < 200; i++) {
      for (const [n, endpoint] of endpoints.entries()) {
        // Same text to all (encoded once), and a text of each client's own.
        endpoint.send(`shared ${turn}-${i}`);
        endpoint.sendEvent('own', `client ${n}: ${turn}-${i}\nsecond line`, `${turn}-${i}`);
      }
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  for (const [n, client] of clients.entries()) {
    await client.waitFor(`client ${n}: 2-199\n`);
    const { events } = parseEventStream(client.body);
    const expected = [];
    for (let turn = 0; turn < 3; turn++) {
      for (let i = 0; i < 200; i++) {
        expected.push(['message', `shared ${turn}-${i}`]);
        expected.push(['own', `client ${n}: ${turn}-${i}\nsecond line`]);
      }
    }
    assert.deepEqual(
      events.map((e) => [e.type, e.data]),
      expected,
    );
    assert.equal(client.chunks.length - chunksBefore[n], 3, 'one write per turn');
  }
});
