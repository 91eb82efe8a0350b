// jsext's mark beside the stop token: after close(true), the first request
// carrying the endpoint's own last id (or, if it sent none, the one its
// request carried) gets 204, once; a Channel's ids are never marked; the
// marks are bounded in number and age.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
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
  marks.mark('oldest');
  for (let i = 0; i < marks.MAX_MARKS; i++) marks.mark(`id-${i}`);
  assert.equal(marks.takeMark('oldest'), false, 'pushed out by the newer ones');
  assert.equal(marks.takeMark(`id-${marks.MAX_MARKS - 1}`), true);
  assert.equal(marks.takeMark(`id-${marks.MAX_MARKS - 1}`), false, 'used up');
  for (let i = 0; i < marks.MAX_MARKS; i++) marks.takeMark(`id-${i}`);
  marks.setMarkMaxAge(0);
  try {
    marks.mark('expired');
    assert.equal(marks.takeMark('expired'), false);
  } finally {
    marks.setMarkMaxAge(24 * 60 * 60 * 1000);
  }
  marks.mark('');
  assert.equal(marks.takeMark(''), false, 'no id, no mark');
});
