// The jsext surface: constructor, getters, events, dispatchEvent, close.
import test from 'node:test';
import assert from 'node:assert/strict';
import { EventEndpoint } from 'native-sse';
import { openEndpoint, until, tick, parseEventStream } from './helpers.mjs';

const open = (t, options, headers = {}) => openEndpoint(t, options, { headers });

const unhandled = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

test('it is an EventTarget with the getters of jsext', async (t) => {
  const { endpoint } = await open(t, undefined, { 'Last-Event-ID': 'abc' });
  assert.ok(endpoint instanceof EventTarget);
  assert.ok(endpoint instanceof EventEndpoint);
  assert.equal(Object.prototype.toString.call(endpoint), '[object EventEndpoint]');
  assert.equal(endpoint.lastEventId, 'abc');
  assert.equal(endpoint.closed, false);
  assert.equal(endpoint.response, null);
  assert.equal(typeof endpoint.bufferedAmount, 'number');
  await endpoint.send('x', 'def');
  assert.equal(endpoint.lastEventId, 'def', 'then the last id sent');
  await endpoint.send('y');
  assert.equal(endpoint.lastEventId, 'def', 'a frame without id keeps it');
});

test('send and sendEvent return promises that resolve', async (t) => {
  const { endpoint, client } = await open(t);
  const sent = endpoint.send('a');
  assert.ok(sent instanceof Promise);
  assert.equal(await sent, undefined);
  assert.equal(await endpoint.sendEvent('e', 'b', '9'), undefined);
  await client.waitFor('data: b');
  assert.equal(endpoint.bufferedAmount, 0, 'nothing left queued after the flush');
});

test('dispatchEvent: message → send, other types → sendEvent, plain events → listeners', async (t) => {
  const { endpoint, client } = await open(t);
  assert.equal(endpoint.dispatchEvent(new MessageEvent('message', { data: 'm', lastEventId: '1' })), true);
  assert.equal(endpoint.dispatchEvent(new MessageEvent('update', { data: 'u' })), true);
  // Node's MessageEvent ignores `cancelable`, so a subclass stands in for
  // an event whose default was prevented before it was dispatched.
  const prevented = new (class extends MessageEvent {
    get defaultPrevented() {
      return true;
    }
  })('update', { data: 'p' });
  assert.equal(endpoint.dispatchEvent(prevented), false, 'returns !defaultPrevented');

  const heard = [];
  endpoint.addEventListener('ping', (ev) => heard.push(ev.type));
  endpoint.addEventListener('cancel-me', (ev) => ev.preventDefault());
  assert.equal(endpoint.dispatchEvent(new Event('ping')), true);
  assert.equal(endpoint.dispatchEvent(new Event('cancel-me', { cancelable: true })), false);
  assert.deepEqual(heard, ['ping']);

  await client.waitFor('data: p');
  const { events } = parseEventStream(client.body);
  assert.deepEqual(
    events.map((e) => [e.type, e.data]),
    [
      ['message', 'm'],
      ['update', 'u'],
      ['update', 'p'],
    ],
  );
  assert.ok(!client.body.includes('ping'), 'plain events are not sent');
});

test('addEventListener with once, and removeEventListener', async (t) => {
  const { endpoint } = await open(t);
  let once = 0;
  let removed = 0;
  const onRemoved = () => removed++;
  endpoint.addEventListener('poke', () => once++, { once: true });
  endpoint.addEventListener('poke', onRemoved);
  endpoint.removeEventListener('poke', onRemoved);
  endpoint.dispatchEvent(new Event('poke'));
  endpoint.dispatchEvent(new Event('poke'));
  assert.equal(once, 1);
  assert.equal(removed, 0);
});

test('close() ends the stream after queued frames; the close event fires once', async (t) => {
  const { endpoint, client } = await open(t);
  const closes = [];
  endpoint.addEventListener('close', (ev) => closes.push(ev));
  endpoint.send('before close');
  endpoint.close();
  endpoint.close();
  assert.equal(endpoint.closed, true, 'closed at once');
  await until(() => client.ended);
  assert.ok(client.body.endsWith('data: before close\n\n'));
  await tick(20);
  assert.equal(closes.length, 1);
  const [ev] = closes;
  assert.equal(ev.type, 'close');
  assert.equal(ev.wasClean, true);
  assert.equal(ev.code, 0);
  assert.equal(typeof ev.reason, 'string');
  assert.match(ev.reason, /server/);
});

test("the close event names the endpoint as its target, as an EventTarget's own event does", async (t) => {
  const { endpoint } = await open(t);
  let seen = null;
  endpoint.addEventListener('close', function (event) {
    seen = { self: this, target: event.target, current: event.currentTarget, path: event.composedPath(), event };
  });
  const [event] = await Promise.all([
    new Promise((resolve) => endpoint.addEventListener('close', resolve, { once: true })),
    endpoint.close(),
  ]);
  assert.equal(seen.self, endpoint);
  assert.equal(seen.target, endpoint);
  assert.equal(seen.current, endpoint);
  assert.deepEqual(seen.path, [endpoint]);
  assert.equal(event, seen.event);
  assert.ok(event instanceof Event);
  assert.equal(event.constructor.name, 'CloseEvent');
  if (typeof globalThis.CloseEvent === 'function') assert.ok(event instanceof globalThis.CloseEvent);
  assert.equal(event.target, endpoint);
  assert.equal(event.currentTarget, null, 'after dispatch');
  assert.equal(event.wasClean, true);
});

test('a client that goes away gives one close event and closed === true', async (t) => {
  const { endpoint, client } = await open(t);
  const closes = [];
  endpoint.addEventListener('close', (ev) => closes.push(ev));
  await client.waitFor(': ok');
  client.destroy();
  await until(() => closes.length === 1);
  await tick(20);
  assert.equal(closes.length, 1);
  assert.equal(endpoint.closed, true);
  assert.equal(closes[0].reason, 'client disconnected');
  // Closing afterwards is harmless and fires nothing more.
  endpoint.close();
  await tick(10);
  assert.equal(closes.length, 1);
});

test('a listener added with once sees the close event', async (t) => {
  const { endpoint } = await open(t);
  let count = 0;
  endpoint.addEventListener('close', () => count++, { once: true });
  endpoint.close();
  await until(() => count === 1);
});

test('send() after close rejects with a clear error and nothing goes unhandled', async (t) => {
  const { endpoint } = await open(t);
  endpoint.close();
  await assert.rejects(endpoint.send('late'), { code: 'ERR_SSE_CLOSED', message: /closed/ });
  await assert.rejects(endpoint.sendEvent('e', 'late'), { code: 'ERR_SSE_CLOSED' });
  // Not awaited: must not become an unhandled rejection.
  endpoint.send('ignored');
  assert.doesNotThrow(() => endpoint.dispatchEvent(new MessageEvent('message', { data: 'late' })));
  await tick(20);
  assert.deepEqual(unhandled, []);
});

test('endpoints release their native streams when they end', async (t) => {
  const native = (await import('../binding.js')).default;
  const before = native.figures().openStreams;
  const { endpoint, client } = await open(t);
  assert.equal(native.figures().openStreams, before + 1);
  client.destroy();
  await until(() => endpoint.closed);
  assert.equal(native.figures().openStreams, before);
});
