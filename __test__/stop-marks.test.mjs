// jsext's mark beside the stop token: after close(true), the first request
// carrying the endpoint's own last id (or, if it sent none, the one its
// request carried) gets 204, once; a Channel's ids are never marked; the
// marks are bounded in number and age.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import http from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Channel, EventEndpoint } from 'native-sse';
import { serve, until, tallyEvents } from './helpers.mjs';

const marks = createRequire(import.meta.url)('../lib/stop-marks.js');

/** A server whose endpoints are handed to `onOpen`; every endpoint made is kept. */
async function server(t, onOpen) {
  const endpoints = [];
  const app = await serve((req, res) => {
    const endpoint = new EventEndpoint(req, res);
    endpoints.push(endpoint);
    onOpen(endpoint, endpoints.length);
  });
  t.after(() => app.close());
  return { endpoints, port: app.port };
}

/** Opens a stream with `lastEventId`; resolves with its tally once answered. */
async function request(port, lastEventId) {
  const headers = lastEventId === undefined ? {} : { 'Last-Event-ID': lastEventId };
  const tally = tallyEvents(`http://127.0.0.1:${port}/`, { headers });
  await until(() => tally.status !== 0, 5000, 'the answer');
  return tally;
}

test("close(true): the request's own Last-Event-ID is answered 204, once, as jsext does", async (t) => {
  const { endpoints, port } = await server(t, (endpoint, n) => {
    if (n === 1) endpoint.close(true);
  });
  const first = await request(port, '123');
  assert.equal(first.status, 200);
  await until(() => first.ended, 5000, 'the first stream to end');
  const again = await request(port, '123');
  assert.equal(again.status, 204);
  assert.equal(endpoints[1].closed, true);
  // The mark is used up: the next request with the id is served.
  const third = await request(port, '123');
  assert.equal(third.status, 200);
  assert.equal(endpoints[2].closed, false);
  third.close();
});

test('close(true) marks the last id the endpoint sent itself, not the ones before', async (t) => {
  const { port } = await server(t, async (endpoint, n) => {
    if (n !== 1) return;
    await endpoint.send('one', 'own-1');
    await endpoint.send('two', 'own-2');
    endpoint.close(true);
  });
  const first = await request(port);
  await until(() => first.ended, 5000, 'the stream to end');
  assert.equal((await request(port, 'own-2')).status, 204);
  const earlier = await request(port, 'own-1');
  assert.equal(earlier.status, 200);
  earlier.close();
});

test("a Channel's ids are never marked: the other clients holding one go on", async (t) => {
  const channel = new Channel({ historySize: 10 });
  const { endpoints, port } = await server(t, (endpoint) => channel.subscribe(endpoint));
  const stopped = await request(port);
  const other = await request(port);
  await until(() => endpoints.length === 2);
  channel.broadcast('shared', { id: 'b-7' });
  await until(() => other.count === 1 && stopped.count === 1, 5000, 'the broadcast');
  endpoints[0].close(true);
  await until(() => stopped.ended, 5000, 'the stopped stream to end');
  // The other client reconnects with the broadcast's id: served, resumed.
  other.close();
  const back = await request(port, 'b-7');
  assert.equal(back.status, 200);
  back.close();
  // The stopped one is stopped by its token.
  const token = stopped.named.find((e) => e.type === 'native-sse:stop').id;
  assert.equal((await request(port, token)).status, 204);
});

test('marks are bounded in number (the oldest go first) and in age', () => {
  const who = [1, 2]; // another client's fingerprint
  marks.mark(who, 'oldest');
  for (let i = 0; i < marks.MAX_MARKS; i++) marks.mark(who, `id-${i}`);
  const request = { headers: {}, socket: null };
  const fingerprint = marks.fingerprintOf(request);
  marks.mark(fingerprint, 'mine');
  assert.equal(marks.takeMark(request, 'oldest'), false, 'pushed out by the newer ones');
  assert.equal(marks.takeMark(request, 'mine'), true);
  assert.equal(marks.takeMark(request, 'mine'), false, 'used up');
  assert.ok(marks.markCount() <= marks.MAX_MARKS);
  marks.setMarkMaxAge(0);
  try {
    marks.mark(fingerprint, 'expired');
    assert.equal(marks.takeMark(request, 'expired'), false);
  } finally {
    marks.setMarkMaxAge(24 * 60 * 60 * 1000);
  }
  marks.mark(fingerprint, '');
  assert.equal(marks.takeMark(request, ''), false, 'no id, no mark');
});

/** A GET of the stream from `localAddress`, with `headers`; resolves with
 * its status and the ids it read once answered. */
function get(port, { localAddress = '127.0.0.1', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: '127.0.0.1', port, localAddress, headers: { accept: 'text/event-stream', ...headers } },
      (response) => {
        const result = { status: response.statusCode, ids: [], close: () => request.destroy() };
        response.setEncoding('utf8');
        response.on('data', (text) => {
          for (const [, id] of text.matchAll(/^id: (.*)$/gm)) result.ids.push(id);
        });
        response.on('error', () => {});
        resolve(result);
      },
    );
    request.on('error', reject);
  });
}

test("a stop cannot be forged through the request's id: the victim is served", async (t) => {
  // The route refuses some clients with close(true) before sending them any
  // id; everyone else is sent a counter, as ids.
  let counter = 0;
  const app = await serve((req, res) => {
    const endpoint = new EventEndpoint(req, res);
    if (req.headers['x-refuse'] === '1') endpoint.close(true);
    else if (!endpoint.closed) endpoint.send('tick', String(++counter));
  });
  t.after(() => app.close());
  // Victims: one on another address, one on the attacker's with a session.
  const elsewhere = await get(app.port, { localAddress: '127.0.0.2' });
  const sameAddress = await get(app.port, { headers: { cookie: 'session=victim' } });
  await until(() => elsewhere.ids.length === 1 && sameAddress.ids.length === 1, 5000, 'the ids');
  elsewhere.close();
  sameAddress.close();
  // The attacker names each victim's id as its own, and is refused.
  for (const id of [elsewhere.ids[0], sameAddress.ids[0]]) {
    const attack = await get(app.port, { headers: { 'last-event-id': id, 'x-refuse': '1' } });
    assert.equal(attack.status, 200);
  }
  // The victims come back with their ids: served, not stopped.
  const back1 = await get(app.port, { localAddress: '127.0.0.2', headers: { 'last-event-id': elsewhere.ids[0] } });
  const back2 = await get(app.port, { headers: { 'last-event-id': sameAddress.ids[0], cookie: 'session=victim' } });
  assert.equal(back1.status, 200);
  assert.equal(back2.status, 200);
  back1.close();
  back2.close();
  // The attacker itself, stopped, is answered 204 on its own reconnect (the
  // mark was its own), as jsext answers it.
  const again = await get(app.port, { headers: { 'last-event-id': sameAddress.ids[0] } });
  assert.equal(again.status, 204);
});

test('marks of 10,000 stopped clients with 15 KB and 4 KB ids keep a digest each, not the id', async (t) => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  const app = await serve((req, res) => new EventEndpoint(req, res).close(true));
  t.after(() => app.close());
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  t.after(() => agent.destroy());
  const stop = (id) =>
    new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: app.port, agent, headers: { 'last-event-id': id } }, (response) => {
          response.resume();
          response.on('end', resolve);
        })
        .on('error', reject);
    });
  gc();
  const before = process.memoryUsage().heapUsed;
  const n = 10_000;
  for (let i = 0; i < n; i += 100) {
    const batch = [];
    for (let j = i; j < i + 100; j++) {
      // Half past what native-sse would send (never marked), half just under.
      const size = j % 2 === 0 ? 15_000 : 4_000;
      batch.push(stop(`${j}-`.padEnd(size, 'x')));
    }
    await Promise.all(batch);
  }
  gc();
  const growth = process.memoryUsage().heapUsed - before;
  assert.ok(marks.markCount() <= marks.MAX_MARKS);
  // The ids alone are 95 MB; a digest each is well under 8 MiB.
  assert.ok(growth < 8 * 1024 * 1024, `heap grew ${(growth / 1048576).toFixed(1)} MiB for ${n} marks`);
});
