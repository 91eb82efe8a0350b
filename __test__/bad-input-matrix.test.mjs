// The bad-input matrix: every public method and option × wrong types. Each
// gives a TypeError naming the argument, or a documented coercion, and the
// stream is never corrupted: the bytes still parse into exactly the events
// that were accepted.
import test from 'node:test';
import assert from 'node:assert/strict';
import { EventEndpoint, Channel } from 'native-sse';
import { openEndpoint, parseEventStream } from './helpers.mjs';

const MiB = 1024 * 1024;
const HUGE = 'h'.repeat(16 * MiB);
const VALUES = [
  ['undefined', undefined],
  ['null', null],
  ['0', 0],
  ['42', 42],
  ['-1', -1],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['2^32', 2 ** 32],
  ['1.5', 1.5],
  ['bigint', 1n],
  ['true', true],
  ['object', {}],
  ['array', []],
  ['symbol', Symbol('s')],
  ['function', () => 'x'],
  ['empty string', ''],
  ['string', 'fine'],
  ['lone surrogate', 'a\uD800b'],
  ['NUL', 'a\0b'],
  ['CR', 'a\rb'],
  ['LF', 'a\nb'],
  ['CRLF', 'a\r\nb'],
  ['16 MiB string', HUGE],
];

const tooLarge = (value) => typeof value === 'string' && value.length > 4 * MiB;

/** What an event's data is sent as: a string as it is, another value as
 * its JSON text; null for what JSON cannot say (refused). */
function dataOf(value) {
  if (typeof value === 'string') return value;
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return null;
  try {
    return JSON.stringify(value) ?? null;
  } catch {
    return null;
  }
}

/** What each argument accepts: 'ok', or the error message pattern. */
const expect = {
  data: (v) => {
    const text = dataOf(v);
    return text === null ? /"data"/ : tooLarge(text) ? /"data" argument is too large/ : 'ok';
  },
  eventId: (v, name = 'eventId') =>
    v === undefined || v === null
      ? 'ok'
      : typeof v !== 'string' || /[\r\n\0]/.test(v) || !v.isWellFormed()
        ? new RegExp(`"${name}"`)
        : Buffer.byteLength(v) > 4096
          ? new RegExp(`"${name}" argument .* longer than 4096 bytes`)
          : 'ok',
  event: (v, name = 'event') =>
    typeof v !== 'string' || /[\r\n]/.test(v)
      ? new RegExp(`"${name}"`)
      : tooLarge(v)
        ? new RegExp(`"${name}" argument is too large`)
        : 'ok',
  count: (name) => (v) =>
    v === undefined || (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 2 ** 32 - 1)
      ? 'ok'
      : new RegExp(`"options.${name}"`),
};

/** Runs `attempt`; checks it against the expectation; returns whether it was accepted. */
async function check(label, expected, attempt) {
  let outcome;
  try {
    await attempt();
    outcome = 'ok';
  } catch (err) {
    outcome = err;
  }
  if (expected === 'ok') {
    assert.equal(outcome, 'ok', `${label}: expected acceptance, got ${outcome}`);
    return true;
  }
  assert.ok(outcome instanceof TypeError, `${label}: expected a TypeError, got ${outcome}`);
  assert.match(outcome.message, expected, label);
  // Every error has a code to match on (README, Errors).
  assert.match(outcome.code ?? '', /^ERR_(INVALID_ARG_(TYPE|VALUE)|SSE_[A-Z_]+)$/, `${label}: code`);
  return false;
}

/** What the client should decode for an accepted event. */
function decoded(type, data, id, state) {
  if (id) state.lastId = id.toWellFormed();
  const kind = type === undefined || type === '' ? 'message' : type.toWellFormed();
  return { type: kind, data: data.toWellFormed().replace(/\r\n|\r/g, '\n'), lastEventId: state.lastId };
}

const openStream = openEndpoint;

async function expectStream(client, expected) {
  await client.waitFor('data: end-of-matrix\n\n', 20_000);
  const { events } = parseEventStream(client.body);
  assert.equal(events.length, expected.length + 1);
  assert.deepEqual(events.slice(0, -1), expected);
}

test('send(data, eventId) and sendEvent(event, data, eventId) × every kind of value', async (t) => {
  const { endpoint, client } = await openStream(t);
  const expected = [];
  const state = { lastId: '' };
  for (const [label, value] of VALUES) {
    if (await check(`send(${label})`, expect.data(value), () => endpoint.send(value))) {
      expected.push(decoded(undefined, dataOf(value), undefined, state));
    }
    if (await check(`send('d', ${label})`, expect.eventId(value), () => endpoint.send('d', value))) {
      expected.push(decoded(undefined, 'd', value || undefined, state));
    }
    if (await check(`sendEvent(${label}, 'd')`, expect.event(value), () => endpoint.sendEvent(value, 'd'))) {
      expected.push(decoded(value, 'd', undefined, state));
    }
    if (await check(`sendEvent('e', ${label})`, expect.data(value), () => endpoint.sendEvent('e', value))) {
      expected.push(decoded('e', dataOf(value), undefined, state));
    }
    if (
      await check(`sendEvent('e', 'd', ${label})`, expect.eventId(value), () => endpoint.sendEvent('e', 'd', value))
    ) {
      expected.push(decoded('e', 'd', value || undefined, state));
    }
    const message = new MessageEvent('message', { data: value });
    // A MessageEvent's data defaults to null.
    const sent = message.data;
    if (await check(`dispatchEvent(data: ${label})`, expect.data(sent), () => endpoint.dispatchEvent(message))) {
      expected.push(decoded(undefined, dataOf(sent), undefined, state));
    }
  }
  assert.equal(endpoint.closed, false, 'bad input never closes the stream');
  await endpoint.send('end-of-matrix');
  await expectStream(client, expected);
});

test('a 16 MiB event goes through whole when the cap allows it', async (t) => {
  const { endpoint, client } = await openStream(t, { maxBufferedBytes: 64 * MiB, highWaterMark: 64 * MiB });
  await endpoint.send(HUGE, 'big');
  await endpoint.send('end-of-matrix');
  await client.waitFor('data: end-of-matrix\n\n', 20_000);
  const { events } = parseEventStream(client.body);
  assert.equal(events[0].data.length, HUGE.length);
  assert.equal(events[0].data, HUGE);
  assert.equal(events[0].lastEventId, 'big');
});

test('every option × every kind of value', async () => {
  const options = {
    reconnectionTime: expect.count('reconnectionTime'),
    keepAlive: expect.count('keepAlive'),
    highWaterMark: expect.count('highWaterMark'),
    maxBufferedBytes: (v) => (v === 0 ? /"options.maxBufferedBytes"/ : expect.count('maxBufferedBytes')(v)),
    // A plain object, or an array of [name, value] pairs (the empty one here).
    headers: (v) => (v === undefined || (typeof v === 'object' && v !== null) ? 'ok' : /"options.headers"/),
  };
  for (const [name, expected] of Object.entries(options)) {
    for (const [label, value] of VALUES) {
      await check(`{ ${name}: ${label} }`, expected(value), () =>
        new EventEndpoint(new Request('http://localhost/'), { [name]: value }).close(),
      );
    }
  }
  for (const [label, value] of VALUES) {
    // Options are a plain object (an array is not one).
    const expected =
      value === undefined || value === null || (typeof value === 'object' && !Array.isArray(value))
        ? 'ok'
        : /"options"/;
    await check(`options = ${label}`, expected, () =>
      new EventEndpoint(new Request('http://localhost/'), value).close(),
    );
    const valid = typeof value === 'string' && /^[\t\x20-\x7e\x80-\xff]*$/.test(value);
    await check(`headers value ${label}`, valid ? 'ok' : /"options.headers.X-Test"/, () =>
      new EventEndpoint(new Request('http://localhost/'), { headers: { 'X-Test': value } }).close(),
    );
  }
});

test('constructor arguments and close(noReconnect) × every kind of value', async () => {
  for (const [label, value] of VALUES) {
    await check(`new EventEndpoint(${label})`, /"request"/, () => new EventEndpoint(value));
    await check(
      `header name ${label}`,
      /"options.headers"/,
      () => new EventEndpoint(new Request('http://localhost/'), { headers: { [`X ${String(label)}`]: 'v' } }),
    );
  }
  // close(noReconnect): any truthy value means "do not reconnect".
  for (const [label, value] of VALUES.filter(([, v]) => typeof v !== 'string' || v.length < 100)) {
    const endpoint = new EventEndpoint(new Request('http://localhost/'));
    endpoint.close(value);
    const text = await new Response(endpoint.response.body).text();
    assert.equal(/event: native-sse:stop/.test(text), Boolean(value), `close(${label})`);
  }
});

test('Channel × every kind of value', async (t) => {
  for (const [label, value] of VALUES) {
    const expected =
      value === undefined || (Number.isInteger(value) && value >= 0 && value <= 2 ** 32 - 1)
        ? 'ok'
        : /"options.historySize"/;
    await check(`new Channel({ historySize: ${label} })`, expected, () => new Channel({ historySize: value }));
  }
  const channel = new Channel();
  for (const [label, value] of VALUES) {
    await check(`subscribe(${label})`, /"endpoint"/, () => channel.subscribe(value));
    await check(`unsubscribe(${label})`, /"endpoint"/, () => channel.unsubscribe(value));
  }

  const { endpoint, client } = await openStream(t);
  channel.subscribe(endpoint);
  const expected = [];
  const state = { lastId: '' };
  for (const [label, value] of VALUES) {
    if (await check(`broadcast(${label})`, expect.data(value), () => channel.broadcast(value))) {
      expected.push(decoded(undefined, dataOf(value), undefined, state));
    }
    if (
      await check(`broadcast('d', { id: ${label} })`, expect.eventId(value, 'options.id'), () =>
        channel.broadcast('d', { id: value }),
      )
    ) {
      expected.push(decoded(undefined, 'd', value || undefined, state));
    }
    const eventExpected = value === undefined || value === null ? 'ok' : expect.event(value, 'options.event');
    if (
      await check(`broadcast('d', { event: ${label} })`, eventExpected, () => channel.broadcast('d', { event: value }))
    ) {
      expected.push(decoded(value ?? undefined, 'd', undefined, state));
    }
  }
  assert.equal(endpoint.closed, false);
  channel.broadcast('end-of-matrix');
  await expectStream(client, expected);
});
