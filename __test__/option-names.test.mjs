// Strict options: every option name of every API, misspelled once, is a
// TypeError naming the misspelling and the name it meant, before any byte
// is written or any connection made; the constructor's arguments are
// checked as what they must be; headers come as a plain object, a Headers
// or an array of pairs, and as nothing else.
import test from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { EventEndpoint, Channel, closeAll, configureStopTokens } from 'native-sse';
import { serve, RawClient } from './helpers.mjs';

/** A misspelling of `name` a person makes: two letters swapped, or one
 * doubled for a name too short to swap. */
function misspell(name) {
  const i = Math.min(2, name.length - 2);
  const swapped = name.slice(0, i) + name[i + 1] + name[i] + name.slice(i + 2);
  return swapped === name ? `${name}${name.at(-1)}` : swapped;
}

/** The option names an interface of the typings (index.d.ts) declares:
 * what a user is told exists, and what the runtime must take. */
const typings = readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8');
function declared(name) {
  const body = new RegExp(`interface ${name}(?:<[^>]*>)? \\{([\\s\\S]*?)\\n\\}`).exec(typings)[1];
  return [...body.matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1]);
}

const ENDPOINT = declared('EventEndpointOptions');
const CHANNEL = declared('ChannelOptions');
const REDIS = declared('RedisStreamOptions');
const TLS = declared('RedisTlsOptions');
const BROADCAST = ['event', 'id'];
const SEND_ALL = declared('SendAllOptions');
const CLOSE_ALL = declared('CloseAllOptions');
const STOP_TOKENS = declared('StopTokenOptions');

/** Asserts that `call` throws (or rejects with) a TypeError naming
 * `${path}.${wrong}` and suggesting `meant`. */
async function refuses(call, path, wrong, meant) {
  let error;
  try {
    await call();
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof TypeError, `${path}.${wrong}: ${error ?? 'accepted'}`);
  assert.match(error.message, new RegExp(`"${path.replaceAll('.', '\\.')}\\.${wrong}"`), error.message);
  if (meant !== undefined) assert.match(error.message, new RegExp(`did you mean "${meant}"`), error.message);
}

test('every option the typings declare is one the runtime takes', async () => {
  for (const list of [ENDPOINT, CHANNEL, REDIS, TLS, SEND_ALL, CLOSE_ALL, STOP_TOKENS]) assert.ok(list.length >= 2);
  const redis = { url: 'rediss://127.0.0.1:1', stream: 's' };
  const channels = [];
  const calls = [
    ...ENDPOINT.map((name) => () => new EventEndpoint(new Request('http://127.0.0.1/'), { [name]: undefined }).close()),
    ...CHANNEL.map((name) => () => new Channel({ [name]: undefined })),
    ...REDIS.map((name) => () => channels.push(new Channel({ redis: { ...redis, [name]: undefined } }))),
    ...TLS.map((name) => () => channels.push(new Channel({ redis: { ...redis, tls: { [name]: undefined } } }))),
    ...SEND_ALL.map((name) => () => new Channel().broadcastAll([], { [name]: undefined })),
    ...CLOSE_ALL.map((name) => () => closeAll({ [name]: undefined })),
    ...STOP_TOKENS.filter((name) => name !== 'key').map((name) => () => configureStopTokens({ [name]: undefined })),
  ];
  for (const call of calls) {
    try {
      await call();
    } catch (err) {
      assert.doesNotMatch(err.message, /is not an option/, String(call));
    }
  }
  for (const channel of channels) {
    channel.ready.catch(() => {});
    channel.close();
  }
});

test('every option of EventEndpoint misspelled: a TypeError naming it, no byte written', async (t) => {
  const failures = [];
  const app = await serve(async (req, res) => {
    try {
      for (const name of ENDPOINT) {
        const wrong = misspell(name);
        await refuses(() => new EventEndpoint(req, res, { [wrong]: 1 }), 'options', wrong, name);
      }
      // Names people reach for from other libraries.
      await refuses(() => new EventEndpoint(req, res, { retry: 3000 }), 'options', 'retry', 'reconnectionTime');
      await refuses(() => new EventEndpoint(req, res, { heartbeat: 1000 }), 'options', 'heartbeat', 'keepAlive');
      // A valid option beside a bad one is no excuse.
      await refuses(
        () => new EventEndpoint(req, res, { reconnectionTime: 5, keepalive: 1 }),
        'options',
        'keepalive',
        'keepAlive',
      );
    } catch (err) {
      failures.push(String(err));
    }
    if (res.headersSent) failures.push('headers were sent');
    res.writeHead(500).end('checked');
  });
  t.after(() => app.close());
  const response = await fetch(app.url);
  assert.equal(await response.text(), 'checked');
  assert.deepEqual(failures, []);
});

test('every option of a web Request endpoint misspelled, and a Node response in place of options', async () => {
  const request = () => new Request('http://127.0.0.1/');
  for (const name of ENDPOINT) {
    const wrong = misspell(name);
    await refuses(() => new EventEndpoint(request(), { [wrong]: 1 }), 'options', wrong, name);
  }
  const res = { writeHead() {}, setHeader() {}, write() {}, end() {}, on() {} };
  assert.throws(
    () => new EventEndpoint(request(), res),
    (err) => {
      return err instanceof TypeError && /"options"/.test(err.message) && /web Request takes/.test(err.message);
    },
  );
  assert.throws(() => new EventEndpoint(request(), {}, {}), /"options"/);
});

test('the constructor says what it was given, never "undefined undefined"', async (t) => {
  const messages = [];
  const app = await serve((req, res) => {
    for (const attempt of [() => new EventEndpoint(req), () => new EventEndpoint(req, undefined, {})]) {
      try {
        attempt();
        messages.push('accepted');
      } catch (err) {
        messages.push(err.message);
      }
    }
    res.end();
  });
  t.after(() => app.close());
  await (await fetch(app.url)).text();
  for (const message of messages) {
    assert.match(message, /"response" argument must be an http\.ServerResponse/);
    assert.match(message, /received undefined$/);
    assert.doesNotMatch(message, /undefined undefined/);
  }
});

test('every option of Channel, its redis options and their tls misspelled', async () => {
  for (const name of CHANNEL) {
    const wrong = misspell(name);
    await refuses(() => new Channel({ [wrong]: 1 }), 'options', wrong, name);
  }
  await refuses(() => new Channel({ redisUrl: 'redis://127.0.0.1:1' }), 'options', 'redisUrl', 'redis');
  await refuses(() => new Channel({ history: 100 }), 'options', 'history', 'historySize');
  const redis = { url: 'rediss://127.0.0.1:1', stream: 's' };
  for (const name of REDIS) {
    const wrong = misspell(name);
    await refuses(() => new Channel({ redis: { ...redis, [wrong]: 1 } }), 'options.redis', wrong, name);
  }
  for (const name of TLS) {
    const wrong = misspell(name);
    await refuses(() => new Channel({ redis: { ...redis, tls: { [wrong]: 'x' } } }), 'options.redis.tls', wrong, name);
  }
});

test('every option of broadcast, broadcastAll, sendAll, closeAll and configureStopTokens misspelled', async (t) => {
  const channel = new Channel();
  for (const name of BROADCAST) {
    const wrong = misspell(name);
    await refuses(() => channel.broadcast('x', { [wrong]: 'a' }), 'options', wrong, name);
  }
  await refuses(() => channel.broadcast('x', { eventName: 'a' }), 'options', 'eventName', 'event');
  for (const name of SEND_ALL) {
    const wrong = misspell(name);
    await refuses(() => channel.broadcastAll([], { [wrong]: 1 }), 'options', wrong, name);
  }
  for (const name of CLOSE_ALL) {
    const wrong = misspell(name);
    await refuses(() => closeAll({ [wrong]: 1 }), 'options', wrong, name);
  }
  await refuses(() => closeAll({ timeOut: 1 }), 'options', 'timeOut', 'timeout');
  for (const name of STOP_TOKENS) {
    const wrong = misspell(name);
    await refuses(() => configureStopTokens({ [wrong]: 1 }), 'options', wrong, name);
  }
  // A Redis-backed channel's broadcast rejects (its outcome is a promise);
  // its options are checked before anything goes to Redis.
  const remote = new Channel({ redis: { url: 'redis://127.0.0.1:1', stream: 'never' } });
  remote.ready.catch(() => {});
  t.after(() => remote.close());
  await refuses(() => remote.broadcast('x', { evnet: 'a' }), 'options', 'evnet', 'event');

  let endpoint;
  const app = await serve((req, res) => {
    endpoint = new EventEndpoint(req, res);
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await client.waitFor(': ok');
  for (const name of SEND_ALL) {
    const wrong = misspell(name);
    await refuses(() => endpoint.sendAll([], { [wrong]: 1 }), 'options', wrong, name);
  }
  assert.equal(client.body, ': ok\n\n', 'nothing was sent');
});

test('headers: a plain object, a Headers or pairs are sent; a Map or a class instance is refused', async (t) => {
  const given = [
    { 'X-Kind': 'object' },
    new Headers({ 'X-Kind': 'headers' }),
    [['X-Kind', 'pairs']],
    Object.assign(Object.create(null), { 'X-Kind': 'bare' }),
  ];
  let turn = 0;
  const failures = [];
  const app = await serve((req, res) => {
    for (const bad of [new Map([['X-Kind', 'map']]), new URL('http://x/'), [['X-Kind']], [['X-Kind', 1]], 'x']) {
      try {
        new EventEndpoint(req, res, { headers: bad });
        failures.push(`accepted ${bad}`);
      } catch (err) {
        if (!(err instanceof TypeError) || !/"options\.headers/.test(err.message)) failures.push(String(err));
      }
    }
    const endpoint = new EventEndpoint(req, res, { headers: given[turn++] });
    endpoint.close();
  });
  t.after(() => app.close());
  for (const kind of ['object', 'headers', 'pairs', 'bare']) {
    const response = await fetch(app.url);
    await response.text();
    assert.equal(response.headers.get('x-kind'), kind);
    assert.equal(response.headers.get('content-type'), 'text/event-stream');
  }
  assert.deepEqual(failures, []);
});
