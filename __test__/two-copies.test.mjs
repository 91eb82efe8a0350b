// Two copies of the JavaScript layer on one thread, as a module registry
// reset makes them (test runners, dev servers that re-evaluate modules):
// they share the addon and its per-thread state in Rust, and each must still
// deliver exactly its own endpoints' events.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { serve, until, tick, RawClient, parseEventStream } from './helpers.mjs';

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL('..', import.meta.url));

/** Loads native-sse again, as a fresh module registry would. */
function freshCopy() {
  for (const key of Object.keys(require.cache)) {
    if (key.startsWith(root) && !key.includes('node_modules')) delete require.cache[key];
  }
  return require('native-sse');
}

const first = require('native-sse');
const second = freshCopy();

function events(client) {
  return parseEventStream(client.body).events.map((e) => `${e.type}:${e.data}:${e.lastEventId}`);
}

test('two copies of lib/ are two copies', () => {
  assert.notEqual(first.EventEndpoint, second.EventEndpoint);
});

test('endpoints of two copies sending in the same turns each get exactly their own events, in order', async (t) => {
  const endpoints = {};
  const app = await serve((req, res) => {
    const copy = req.url === '/first' ? first : second;
    endpoints[req.url] = new copy.EventEndpoint(req, res, { keepAlive: 0 });
  });
  t.after(() => app.close());
  const clients = {
    '/first': RawClient.connect(app.port, { path: '/first' }),
    '/second': RawClient.connect(app.port, { path: '/second' }),
  };
  t.after(() => {
    for (const c of Object.values(clients)) c.destroy();
  });
  await until(() => endpoints['/first'] && endpoints['/second']);
  await Promise.all(Object.values(clients).map((c) => c.waitFor(': ok')));
  const a = endpoints['/first'];
  const b = endpoints['/second'];
  const expected = { '/first': [], '/second': [] };
  for (let turn = 0; turn < 3; turn++) {
    // The same event from both copies in turn: each copy's "send the last
    // frame again" must not pick up the other copy's frame.
    void a.send('same', `a${turn}`);
    void b.send('same', `b${turn}`);
    void a.send('same', `a${turn}`);
    void b.sendEvent('only-b', `b-data-${turn}`);
    void a.send(`a-data-${turn}`);
    expected['/first'].push(`message:same:a${turn}`, `message:same:a${turn}`, `message:a-data-${turn}:a${turn}`);
    expected['/second'].push(`message:same:b${turn}`, `only-b:b-data-${turn}:b${turn}`);
    await tick(5);
  }
  for (const [path, client] of Object.entries(clients)) {
    await until(() => events(client).length >= expected[path].length, 5000, `the events of ${path}`);
    await tick(50);
    assert.deepEqual(events(client), expected[path]);
  }
});

test('channels and keep-alives of two copies reach their own streams', async (t) => {
  const endpoints = [];
  const channels = { first: new first.Channel({ historySize: 0 }), second: new second.Channel({ historySize: 0 }) };
  const app = await serve((req, res) => {
    const name = req.url.slice(1);
    const copy = name === 'first' ? first : second;
    const endpoint = new copy.EventEndpoint(req, res, { keepAlive: 40 });
    channels[name].subscribe(endpoint);
    endpoints.push(endpoint);
  });
  t.after(() => {
    for (const endpoint of endpoints) endpoint.close();
    app.close();
  });
  const a = RawClient.connect(app.port, { path: '/first' });
  const b = RawClient.connect(app.port, { path: '/second' });
  t.after(() => {
    for (const c of [a, b]) c.destroy();
  });
  await Promise.all([a, b].map((c) => c.waitFor(': ok')));
  channels.first.broadcast('to first');
  channels.second.broadcast('to second');
  await until(() => events(a).length === 1 && events(b).length === 1, 5000, 'the broadcasts');
  assert.deepEqual(events(a), ['message:to first:']);
  assert.deepEqual(events(b), ['message:to second:']);
  // Each copy runs its own keep-alive timer: both idle streams get comments.
  const comments = (client) => client.body.split('\n').filter((line) => line === ':').length;
  await until(() => comments(a) >= 2 && comments(b) >= 2, 5000, 'keep-alive comments on both streams');
});
