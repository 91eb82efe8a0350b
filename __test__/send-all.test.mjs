// sendAll() and broadcastAll(): everything a source yields, one event an
// item, and a source stopped (a generator's finally, a Readable destroyed, a
// ReadableStream cancelled) when its client leaves, without an unhandled
// rejection; objects as JSON; endpoint.signal; isSseError.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Channel, isSseError } from 'native-sse';
import { openEndpoint, parseEventStream, until } from './helpers.mjs';

const unhandled = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

const ITEMS = 10_000;
const HALF = ITEMS / 2;

/** The data of every message event the client has, in order. */
const received = (client) => parseEventStream(client.body).events.map((e) => e.data);

/** 0, 1, …, n - 1 as strings: every item exactly once, in order. */
const upTo = (n) => Array.from({ length: n }, (_, i) => String(i));

/** An async generator of ITEMS numbers that, at HALF, waits for `gate` (the
 * server has seen its client leave): a producer mid-flight. */
function generator(gate, state) {
  return (async function* () {
    try {
      for (let i = 0; i < ITEMS; i++) {
        if (i === HALF) await gate;
        yield i;
      }
    } finally {
      state.stopped = true;
    }
  })();
}

const SOURCES = {
  'an async generator': generator,
  'a Node Readable': (gate, state) => {
    const readable = Readable.from(generator(gate, {}));
    readable.on('close', () => (state.stopped = readable.destroyed));
    return readable;
  },
  'a web ReadableStream of bytes': (gate, state) => {
    let i = 0;
    const encoder = new TextEncoder();
    return new ReadableStream({
      async pull(controller) {
        if (i === HALF) await gate;
        // One event a chunk: the bytes are the item's text.
        controller.enqueue(encoder.encode(String(i++)));
        if (i === ITEMS) controller.close();
      },
      cancel() {
        state.stopped = true;
      },
    });
  },
};

/** A client reads half of a source's items and leaves: the source is
 * stopped, sendAll (or broadcastAll) resolves with `complete: false`, and
 * the client had every item it read exactly once, in order. */
async function leaveHalfWay(t, makeSource, run) {
  const { endpoint, client } = await openEndpoint(t);
  const gone = new Promise((resolve) => endpoint.addEventListener('close', resolve));
  const state = { stopped: false };
  const done = run(endpoint, makeSource(gone, state));
  await client.waitFor(`data: ${HALF - 1}\n\n`, 30_000);
  client.destroy();
  const result = await done;
  assert.deepEqual(result, { sent: HALF, complete: false });
  await until(() => state.stopped, 10_000, 'the source to be stopped');
  assert.deepEqual(received(client), upTo(HALF));
  assert.equal(endpoint.signal.aborted, true);
  client.raw = Buffer.alloc(0);
}

for (const [name, makeSource] of Object.entries(SOURCES)) {
  test(`sendAll of ${name}: a client that leaves half-way stops it`, async (t) => {
    await leaveHalfWay(t, makeSource, (endpoint, source) => endpoint.sendAll(source));
    assert.deepEqual(unhandled, []);
  });
}

test('broadcastAll with an endpoint signal: its client leaving half-way stops the source', async (t) => {
  const channel = new Channel({ historySize: 0 });
  await leaveHalfWay(t, generator, (endpoint, source) => {
    channel.subscribe(endpoint);
    return channel.broadcastAll(source, { signal: endpoint.signal });
  });
  assert.deepEqual(unhandled, []);
});

test('clients leaving half-way, again and again, leave the heap flat', async (t) => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  const heap = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const round = () => leaveHalfWay(t, generator, (endpoint, source) => endpoint.sendAll(source));
  await round();
  const before = heap();
  for (let i = 0; i < 6; i++) await round();
  const grown = heap() - before;
  // Six rounds of 5,000 items: a round that kept its items, its iterator's
  // promises or its endpoint would hold far more than this.
  assert.ok(grown < 2 * 1024 * 1024, `the heap grew by ${grown} bytes over 6 rounds`);
  assert.deepEqual(unhandled, []);
});

test('sendAll sends every item in order: objects as JSON, strings as they are, bytes as text, named and with ids', async (t) => {
  const { endpoint, client } = await openEndpoint(t);
  async function* items() {
    for (let i = 0; i < 1000; i++) yield { i, kind: i % 2 ? 'odd' : 'even' };
  }
  const result = await endpoint.sendAll(items(), { event: (item) => item.kind, id: (_, index) => `n${index}` });
  assert.deepEqual(result, { sent: 1000, complete: true });
  // A character split between two chunks of bytes arrives whole.
  const euro = Buffer.from('price: 3€');
  await endpoint.sendAll(Readable.from([euro.subarray(0, 9), euro.subarray(9), Buffer.from('end')]));
  await endpoint.sendAll(['plain', '{"already":"json"}'], { event: 'text' });
  await endpoint.sendAll([1, 2], { serialize: (n) => `#${n}` });
  await endpoint.send('end-of-test');
  await client.waitFor('data: end-of-test\n\n');
  const { events } = parseEventStream(client.body);
  assert.equal(events.length, 1000 + 3 + 2 + 2 + 1);
  for (let i = 0; i < 1000; i++) {
    assert.deepEqual(events[i], {
      type: i % 2 ? 'odd' : 'even',
      data: JSON.stringify({ i, kind: i % 2 ? 'odd' : 'even' }),
      lastEventId: `n${i}`,
    });
  }
  const rest = events.slice(1000).map((e) => [e.type, e.data]);
  assert.deepEqual(rest, [
    ['message', 'price: 3'],
    ['message', '€'],
    ['message', 'end'],
    ['text', 'plain'],
    ['text', '{"already":"json"}'],
    ['message', '#1'],
    ['message', '#2'],
    ['message', 'end-of-test'],
  ]);
});

test('sendAll: bad input is a TypeError before anything is read; a failing source rejects and is stopped', async (t) => {
  const { endpoint, client } = await openEndpoint(t);
  for (const [source, options, name] of [
    [42, undefined, 'source'],
    ['text', undefined, 'source'],
    [null, undefined, 'source'],
    [[], 'x', 'options'],
    [[], { event: 1 }, 'options.event'],
    [[], { id: 'x' }, 'options.id'],
    [[], { serialize: 1 }, 'options.serialize'],
    [[], { signal: {} }, 'options.signal'],
  ]) {
    const err = await endpoint.sendAll(source, options).then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof TypeError, `${name}: ${err}`);
    assert.match(err.message, new RegExp(`"${name.replace('.', '\\.')}"`));
    assert.ok(isSseError(err, 'ERR_INVALID_ARG_TYPE'));
  }
  // An item that cannot be sent: a TypeError naming it; the source is stopped.
  const state = { stopped: false };
  async function* bad() {
    try {
      yield 'fine';
      yield Symbol('no');
      yield 'never';
    } finally {
      state.stopped = true;
    }
  }
  await assert.rejects(endpoint.sendAll(bad()), /"data"/);
  assert.equal(state.stopped, true);
  // The source's own error is the caller's.
  async function* failing() {
    yield 'one';
    throw new Error('the source failed');
  }
  await assert.rejects(endpoint.sendAll(failing()), /the source failed/);
  await endpoint.send('end-of-test');
  await client.waitFor('data: end-of-test\n\n');
  assert.deepEqual(received(client), ['fine', 'one', 'end-of-test']);
  assert.equal(endpoint.closed, false);
});

test('an options.signal that aborts stops sendAll; a closed endpoint sends nothing', async (t) => {
  const { endpoint, client } = await openEndpoint(t);
  const controller = new AbortController();
  const state = { stopped: false };
  const gate = new Promise((resolve) => controller.signal.addEventListener('abort', resolve));
  const done = endpoint.sendAll(generator(gate, state), { signal: controller.signal });
  await client.waitFor(`data: ${HALF - 1}\n\n`, 30_000);
  controller.abort();
  assert.deepEqual(await done, { sent: HALF, complete: false });
  await until(() => state.stopped);
  assert.equal(endpoint.closed, false, 'the stream itself goes on');
  endpoint.close();
  const unstarted = generator(new Promise(() => {}), {});
  assert.deepEqual(await endpoint.sendAll(unstarted), { sent: 0, complete: false });
  assert.deepEqual(await unstarted.next(), { value: undefined, done: true }, 'stopped before it started');
});

test('endpoint.signal aborts once the stream ends, with the error send() rejects with', async (t) => {
  const { endpoint } = await openEndpoint(t);
  const signal = endpoint.signal;
  assert.equal(signal, endpoint.signal, 'one signal');
  assert.equal(signal.aborted, false);
  let reasonSeen = null;
  signal.addEventListener('abort', () => (reasonSeen = signal.reason));
  endpoint.close();
  assert.equal(signal.aborted, true);
  assert.ok(isSseError(reasonSeen, 'ERR_SSE_CLOSED'));
  const err = await endpoint.send('late').catch((e) => e);
  assert.equal(err.code, reasonSeen.code);
  assert.equal(err.message, reasonSeen.message);
  // Asked for first after the end: aborted already.
  const { endpoint: other } = await openEndpoint(t);
  other.close();
  assert.equal(other.signal.aborted, true);
  assert.ok(isSseError(other.signal.reason, 'ERR_SSE_CLOSED'));
});

test('objects are sent as JSON; strings as they are; what JSON cannot say is a TypeError', async (t) => {
  const { endpoint, client } = await openEndpoint(t);
  const channel = new Channel({ historySize: 0 });
  channel.subscribe(endpoint);
  await endpoint.send({ a: 1, b: [true, null] });
  await endpoint.sendEvent('n', 42);
  endpoint.dispatchEvent(new MessageEvent('message', { data: { via: 'dispatchEvent' } }));
  channel.broadcast(['x'], { id: 'b1' });
  await endpoint.send('{"a":1}');
  const circular = {};
  circular.self = circular;
  for (const value of [undefined, Symbol('s'), () => 1, 1n, circular, { toJSON: () => undefined }]) {
    await assert.rejects(endpoint.send(value), (err) => err instanceof TypeError && /"data"/.test(err.message));
    assert.throws(
      () => channel.broadcast(value),
      (err) => err instanceof TypeError && /"data"/.test(err.message),
    );
  }
  await endpoint.send('end-of-test');
  await client.waitFor('data: end-of-test\n\n');
  const { events } = parseEventStream(client.body);
  assert.deepEqual(
    events.map((e) => [e.type, e.data]),
    [
      ['message', '{"a":1,"b":[true,null]}'],
      ['n', '42'],
      ['message', '{"via":"dispatchEvent"}'],
      ['message', '["x"]'],
      ['message', '{"a":1}'],
      ['message', 'end-of-test'],
    ],
  );
});

test('isSseError tells native-sse errors from others, by code too', () => {
  const ours = Object.assign(new TypeError('x'), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.equal(isSseError(ours), false, 'the same code, not made by native-sse');
  assert.equal(isSseError(new Error('x')), false);
  assert.equal(isSseError({ code: 'ERR_SSE_CLOSED', message: 'x' }), false, 'not an Error');
  assert.equal(isSseError(null), false);
  assert.equal(isSseError(Object.assign(new Error('x'), { code: 'ERR_SSE_CLOSED' }), 'ERR_SSE_CLOSED'), true);
  let thrown;
  try {
    new Channel({ historySize: -1 });
  } catch (err) {
    thrown = err;
  }
  assert.equal(isSseError(thrown), true);
  assert.equal(isSseError(thrown, 'ERR_INVALID_ARG_TYPE'), thrown.code === 'ERR_INVALID_ARG_TYPE');
  assert.equal(isSseError(thrown, 'ERR_SSE_CLOSED'), false);
});
