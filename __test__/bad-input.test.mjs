// Bad input: a TypeError naming the argument, and not a byte written.
import test from 'node:test';
import assert from 'node:assert/strict';
import { EventEndpoint } from 'native-sse';
import { createRequire } from 'node:module';
import { serve, RawClient, openEndpoint, tick, until } from './helpers.mjs';

const open = (t) => openEndpoint(t);

test('names and ids that would corrupt the stream are refused, nothing written', async (t) => {
  const { endpoint, client } = await open(t);
  const cases = [
    [() => endpoint.sendEvent('a\nb', 'x'), /"event"/],
    [() => endpoint.sendEvent('a\rb', 'x'), /"event"/],
    [() => endpoint.sendEvent('a\r\nb', 'x'), /"event"/],
    [() => endpoint.send('x', '1\n'), /"eventId"/],
    [() => endpoint.send('x', '\r1'), /"eventId"/],
    [() => endpoint.send('x', '1\0'), /"eventId"/],
    [() => endpoint.sendEvent('ok', 'x', 'a\nid: forged'), /"eventId"/],
    // Other values go as JSON (api: objects are sent as JSON); what JSON
    // cannot say is refused.
    [() => endpoint.send(42n), /"data"/],
    [() => endpoint.send(undefined), /"data"/],
    [() => endpoint.send(() => 'x'), /"data"/],
    [() => endpoint.send({ toJSON: () => undefined }), /"data"/],
    [() => endpoint.send(Symbol('x')), /"data"/],
    [() => endpoint.send('x', 5), /"eventId"/],
    [() => endpoint.sendEvent(5, 'x'), /"event"/],
    [() => endpoint.sendEvent(undefined, 'x'), /"event"/],
  ];
  for (const [call, name] of cases) {
    await assert.rejects(call(), (err) => err instanceof TypeError && name.test(err.message));
  }
  assert.throws(() => endpoint.dispatchEvent(new MessageEvent('a\nb', { data: 'x' })), TypeError);
  assert.throws(
    () => endpoint.dispatchEvent(new MessageEvent('message', { data: 'x', lastEventId: '1\r' })),
    TypeError,
  );
  assert.throws(() => endpoint.dispatchEvent(new MessageEvent('message', { data: 42n })), /"data"/);
  assert.equal(endpoint.bufferedAmount, 0);
  assert.equal(endpoint.lastEventId, '', 'a refused id is not remembered');

  await endpoint.send('valid', '7');
  await client.waitFor('data: valid');
  await tick(10);
  assert.equal(client.body, ': ok\n\nid: 7\ndata: valid\n\n');
  assert.equal(endpoint.closed, false, 'the stream is still usable');
});

test('invalid options and objects that are not req/res throw before any byte', async (t) => {
  const failures = [];
  const app = await serve((req, res) => {
    const attempts = [
      [() => new EventEndpoint(req, res, { reconnectionTime: -1 }), /"options.reconnectionTime"/],
      [() => new EventEndpoint(req, res, { reconnectionTime: '3000' }), /"options.reconnectionTime"/],
      [() => new EventEndpoint(req, res, { reconnectionTime: NaN }), /"options.reconnectionTime"/],
      [() => new EventEndpoint(req, res, { reconnectionTime: Infinity }), /"options.reconnectionTime"/],
      [() => new EventEndpoint(req, res, { reconnectionTime: 2 ** 32 }), /"options.reconnectionTime"/],
      [() => new EventEndpoint(req, res, 5), /"options"/],
      [() => new EventEndpoint(req, res, { headers: 'x' }), /"options.headers"/],
      [() => new EventEndpoint(req, res, { headers: { 'X-A': 1 } }), /"options.headers.X-A"/],
      [() => new EventEndpoint({}, res), /"request"/],
      [() => new EventEndpoint(null, res), /"request"/],
      [() => new EventEndpoint(undefined), /"request"/],
      [() => new EventEndpoint('http://x'), /"request"/],
      [() => new EventEndpoint(req, {}), /"response"/],
      [() => new EventEndpoint(req), /"response"/],
      [() => new EventEndpoint(req, { write() {} }), /"response"/],
    ];
    for (const [attempt, name] of attempts) {
      try {
        attempt();
        failures.push(`no error for ${attempt}`);
      } catch (err) {
        if (!(err instanceof TypeError) || !name.test(err.message)) failures.push(`${attempt}: ${err}`);
      }
    }
    if (res.headersSent) failures.push('headers were sent');
    res.writeHead(500).end('checked');
  });
  t.after(() => app.close());
  const response = await fetch(app.url);
  assert.equal(response.status, 500);
  assert.equal(await response.text(), 'checked');
  assert.deepEqual(failures, []);
});

test('undefined and null options and ids mean the defaults', async (t) => {
  let endpoint;
  const app = await serve((req, res) => {
    endpoint = new EventEndpoint(req, res, null);
    endpoint.send('a', null);
    endpoint.send('b', undefined);
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await client.waitFor('data: b\n\n');
  assert.equal(client.body, ': ok\n\ndata: a\n\ndata: b\n\n');
});

test("the fast entry for a repeated event (sendAgain) never throws: a slot that is not open, or not a slot, answers 'send in full'", async (t) => {
  const native = createRequire(import.meta.url)('../lib/native.js');
  for (const slot of [2 ** 31, -1, 'x', undefined, {}]) assert.equal(native.sendAgain(slot), native.SEND_STALE);
  assert.equal(native.sendAgain(), native.SEND_STALE);
  // Through the endpoint: the same event to an open and a closed endpoint.
  const { endpoint, client } = await open(t);
  const { endpoint: closed } = await open(t);
  closed.close();
  await endpoint.send('again');
  await endpoint.send('again');
  await assert.rejects(closed.send('again'), { code: 'ERR_SSE_CLOSED' });
  await until(() => client.body.split('data: again\n\n').length === 3, 5000, 'both events');
  assert.equal(client.body.split('data: again\n\n').length, 3, 'once each');
});
