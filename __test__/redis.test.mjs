// A Channel across processes through a Redis Stream, against a real
// redis-server started here on 127.0.0.1. Without redis-server on the PATH
// these tests cannot run: a notice says so, and under CI that is a failure.
import test from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { redisForFile, freePort, startApp, redisSuite } from './redis-server.mjs';
import { Channel } from 'native-sse';
import { until, tick, startProgram, openEndpoint, parseEventStream } from './helpers.mjs';

function listen(t, url, headers = {}) {
  const es = new EventSource(`${url}/events`, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, ...headers } }),
  });
  t.after(() => es.close());
  const got = [];
  es.onmessage = (e) => got.push({ id: e.lastEventId, data: e.data });
  // The app sends "subscribed" once subscribe() has resolved: from then on
  // the client gets every broadcast.
  const client = { es, got, subscribed: false };
  es.addEventListener('subscribed', () => (client.subscribed = true));
  return client;
}

/** Resolves once every client's subscription is live. */
const subscribed = (clients) => until(() => clients.every((c) => c.subscribed), 10_000, 'the subscriptions');

function registerTests() {
  const file = redisForFile('native-sse-test');
  const nextStream = file.nextStream;

  test('broadcastAll on a Redis-backed channel appends every item in order, each awaited', async (t) => {
    const channel = new Channel({ redis: { url: file.redis.url, stream: nextStream() } });
    t.after(() => channel.close());
    await channel.ready;
    const { endpoint, client } = await openEndpoint(t);
    await channel.subscribe(endpoint);
    async function* items() {
      for (let i = 0; i < 200; i++) yield { i };
    }
    assert.deepEqual(await channel.broadcastAll(items(), { event: 'item' }), { sent: 200, complete: true });
    await client.waitFor('data: {"i":199}\n\n', 10_000);
    const { events } = parseEventStream(client.body);
    assert.deepEqual(
      events.map((e) => [e.type, e.data]),
      Array.from({ length: 200 }, (_, i) => ['item', JSON.stringify({ i })]),
    );
    // The ids are the stream's: an id option is refused before anything is read.
    const state = { read: false };
    async function* unread() {
      state.read = true;
      yield 'x';
    }
    await assert.rejects(channel.broadcastAll(unread(), { id: () => '1' }), /"options\.id"/);
    assert.equal(state.read, false);
  });

  test('a stream expires redis.ttl ms after its last broadcast (a day by default, never with 0); a resume after that is told incomplete', async (t) => {
    const redis = file.redis;
    const [short, byDefault, never] = [nextStream(), nextStream(), nextStream()];
    const channels = [
      new Channel({ redis: { url: redis.url, stream: short, ttl: 3000 } }),
      new Channel({ redis: { url: redis.url, stream: byDefault } }),
      new Channel({ redis: { url: redis.url, stream: never, ttl: 0 } }),
    ];
    t.after(() => {
      for (const channel of channels) channel.close();
    });
    const ids = [];
    for (const channel of channels) ids.push(await channel.broadcast('kept for a while'));
    const [shortTtl, defaultTtl, neverTtl] = await redis.commands([
      ['PTTL', short],
      ['PTTL', byDefault],
      ['PTTL', never],
    ]);
    assert.ok(shortTtl > 0 && shortTtl <= 3000, `PTTL ${shortTtl}`);
    assert.ok(defaultTtl > 86_400_000 - 60_000 && defaultTtl <= 86_400_000, `PTTL ${defaultTtl}`);
    assert.equal(neverTtl, -1, 'no expiry');
    // Each broadcast sets it again: a stream in use does not expire.
    let before;
    await until(
      async () => {
        [before] = await redis.commands([['PTTL', short]]);
        return before < 2000;
      },
      10_000,
      'time to pass',
    );
    await channels[0].broadcast('still in use');
    const [after] = await redis.commands([['PTTL', short]]);
    assert.ok(after > before, `the expiry was set again: PTTL ${before}, then ${after}`);
    await until(async () => (await redis.commands([['EXISTS', short]]))[0] === 0, 20_000, 'the stream to expire');
    // A client that comes back with an id of the stream that expired.
    const { endpoint } = await openEndpoint(t, undefined, { headers: { 'Last-Event-ID': ids[0] } });
    assert.deepEqual(await channels[0].subscribe(endpoint), { replayed: 0, complete: false });
    assert.throws(() => new Channel({ redis: { url: redis.url, stream: 'x', ttl: -1 } }), /"options\.redis\.ttl"/);
    assert.throws(() => new Channel({ redis: { url: redis.url, stream: 'x', ttl: 1.5 } }), TypeError);
  });

  test('deleteHistory() deletes the stream at once, after the broadcasts made before it: the clients of two processes go on live, unwarned; a resume from before is told incomplete; a key of another type is left alone', async (t) => {
    const redis = file.redis;
    const stream = nextStream();
    const a = await startApp(t, redis, stream);
    const b = await startApp(t, redis, stream);
    const clients = [listen(t, a.url), listen(t, b.url)];
    await subscribed(clients);
    const before = [];
    for (let i = 0; i < 5; i++) before.push((await a.publish(`before ${i}`)).body);
    await until(() => clients.every((c) => c.got.length === 5), 10_000, 'the events before');
    // Here, two broadcasts and the delete, none awaited before the next:
    // the delete comes after them, and they go with the stream.
    const channel = new Channel({ redis: { url: redis.url, stream } });
    t.after(() => channel.close());
    const lastTwo = [channel.broadcast('just before'), channel.broadcast('just before, too')];
    const deleted = channel.deleteHistory();
    const lastIds = await Promise.all(lastTwo);
    assert.equal(await deleted, true);
    assert.deepEqual(await redis.commands([['EXISTS', stream]]), [0], 'the stream is gone');
    assert.equal(await channel.deleteHistory(), false, 'nothing left to delete');
    assert.equal(await b.deleteHistory(), 'false', 'nor from the other process');
    // The live clients of both processes go on with the next stream.
    const after = [];
    for (let i = 0; i < 5; i++) after.push((await b.publish(`after ${i}`)).body);
    for (const client of clients) {
      await until(() => client.got.at(-1)?.id === after.at(-1), 10_000, 'the events after the delete');
      const ids = client.got.map((e) => e.id);
      assert.deepEqual(ids.slice(0, 5), before);
      assert.deepEqual(ids.slice(-5), after);
      // What was deleted before a process read it did not reach its
      // clients; what did came once, in order.
      const between = ids.slice(5, -5);
      assert.deepEqual(between, lastIds.slice(0, between.length));
    }
    for (const app of [a, b])
      assert.deepEqual((await app.stats()).warnings, [], 'a delete is not a stream that went back');
    // A client that comes back with an id of the deleted stream.
    const { endpoint } = await openEndpoint(t, undefined, { headers: { 'Last-Event-ID': before[2] } });
    assert.deepEqual(await channel.subscribe(endpoint), { replayed: 5, complete: false });
    // A channel named after a key of another type never deletes it.
    const other = nextStream();
    await redis.commands([['SET', other, 'not a stream']]);
    const wrong = new Channel({ redis: { url: redis.url, stream: other } });
    t.after(() => wrong.close());
    await assert.rejects(
      wrong.deleteHistory(),
      (err) =>
        err.code === 'ERR_SSE_REDIS_UNAVAILABLE' && /WRONGTYPE.*not a stream: it was not deleted/.test(err.message),
    );
    assert.equal(String((await redis.commands([['GET', other]]))[0]), 'not a stream');
    // A local channel forgets the events it kept.
    const local = new Channel({ historySize: 10 });
    local.broadcast('kept', { id: '1' });
    assert.equal(await local.deleteHistory(), true);
    assert.equal(await local.deleteHistory(), false);
    const resumed = await openEndpoint(t, undefined, { headers: { 'Last-Event-ID': '1' } });
    assert.deepEqual(local.subscribe(resumed.endpoint), { replayed: 0, complete: false });
  });

  test('broadcasts from either of two processes reach the clients of both, in one order', async (t) => {
    const stream = nextStream();
    const a = await startApp(t, file.redis, stream);
    const b = await startApp(t, file.redis, stream);
    const clients = [listen(t, a.url), listen(t, a.url), listen(t, b.url), listen(t, b.url)];
    await subscribed(clients);
    const published = [];
    for (let i = 0; i < 20; i++) {
      const { ok, body } = await (i % 2 ? b : a).publish(`message ${i}`);
      assert.ok(ok, body);
      published.push({ id: body, data: `message ${i}` });
    }
    for (const client of clients) {
      await until(() => client.got.length >= 20, 10_000, '20 events');
      assert.deepEqual(client.got, published);
    }
  });

  test('a client moved from one process to the other resumes exactly', async (t) => {
    const stream = nextStream();
    const a = await startApp(t, file.redis, stream);
    const b = await startApp(t, file.redis, stream);
    const first = listen(t, a.url);
    await subscribed([first]);
    const published = [];
    for (let i = 0; i < 5; i++) published.push({ id: (await a.publish(`m${i}`)).body, data: `m${i}` });
    await until(() => first.got.length === 5);
    first.es.close();
    const lastSeen = first.got.at(-1).id;
    for (let i = 5; i < 10; i++) published.push({ id: (await b.publish(`m${i}`)).body, data: `m${i}` });
    // The client comes back, to the other process, with its Last-Event-ID.
    const moved = listen(t, b.url, { 'Last-Event-ID': lastSeen });
    await until(() => moved.got.length >= 5, 10_000, 'the missed events');
    const live = await a.publish('m10');
    published.push({ id: live.body, data: 'm10' });
    await until(() => moved.got.length >= 6, 10_000, 'the live event');
    assert.deepEqual([...first.got, ...moved.got], published);
  });

  test('Redis killed and restarted mid-stream: nothing lost, nothing twice', async (t) => {
    const stream = nextStream();
    const a = await startApp(t, file.redis, stream);
    const b = await startApp(t, file.redis, stream);
    const clients = [listen(t, a.url), listen(t, b.url)];
    await subscribed(clients);
    const accepted = [];
    const publishFrom = async (app, text) => {
      const { ok, body } = await app.publish(text);
      if (ok) accepted.push({ id: body, data: text });
      return { ok, body };
    };
    for (let i = 0; i < 5; i++) await publishFrom(i % 2 ? a : b, `before ${i}`);
    await file.redis.kill();
    // The first broadcast meets the broken connection (its fate is unknown
    // to the publisher); the next ones cannot connect: not appended. Each is
    // told at once.
    for (const [text, code] of [
      ['while down', /ERR_SSE_REDIS_(OUTCOME_UNKNOWN|NOT_APPENDED)/],
      ['still down', /ERR_SSE_REDIS_NOT_APPENDED/],
    ]) {
      const started = performance.now();
      const down = await publishFrom(a, text);
      assert.equal(down.ok, false, 'a broadcast while Redis is down is rejected');
      assert.match(down.body, code);
      assert.ok(performance.now() - started < 1500, `rejected after ${Math.round(performance.now() - started)} ms`);
    }
    await file.redis.run();
    // The publishers reconnect by themselves; keep trying for a while.
    for (let i = 0; i < 5; i++) {
      const deadline = performance.now() + 10_000;
      while (!(await publishFrom(i % 2 ? a : b, `after ${i}`)).ok) {
        if (performance.now() > deadline) throw new Error('no publish got through after the restart');
        await tick(100);
      }
    }
    for (const client of clients) {
      await until(() => client.got.length >= accepted.length, 15_000, `${accepted.length} events`);
      await tick(50);
      assert.deepEqual(client.got, accepted);
    }
  });

  test('after Redis restarts, the first broadcast of a process that sent nothing meanwhile is appended, not left unknown', async (t) => {
    // A publisher idle through an outage holds a dead connection. Its reader
    // saw Redis go: the publisher opens a new connection before it sends,
    // instead of losing the pipeline's reply on the dead one (which would
    // leave an event that was never appended reported as "unknown").
    const stream = nextStream();
    const quiet = await startApp(t, file.redis, stream);
    const busy = await startApp(t, file.redis, stream);
    const client = listen(t, quiet.url);
    await subscribed([client]);
    const before = await quiet.publish('before');
    assert.ok(before.ok, before.body);
    await file.redis.kill();
    await file.redis.run();
    // The other process gets a broadcast through; once the quiet process's
    // client has it, the quiet process's reader is back on Redis.
    let back;
    await until(
      async () => {
        back = await busy.publish('back');
        return back.ok;
      },
      15_000,
      'a broadcast after the restart',
    );
    await until(() => client.got.some((e) => e.id === back.body), 15_000, 'the quiet process to read again');
    const first = await quiet.publish('first after the outage');
    assert.ok(first.ok, `the first broadcast after the outage: ${first.body}`);
    await until(() => client.got.some((e) => e.id === first.body), 10_000, 'its delivery');
    // In order, each once (a "back" whose reply was lost may be there twice
    // only if Redis took it; its id then differs).
    const data = client.got.map((e) => e.data);
    assert.equal(data[0], 'before');
    assert.equal(data.at(-1), 'first after the outage');
    assert.equal(new Set(client.got.map((e) => e.id)).size, client.got.length, 'no event twice');
  });

  test('examples/cluster: two workers share the channel', async (t) => {
    const started = await startProgram(t, process.execPath, ['examples/cluster/server.mjs'], {
      REDIS_URL: file.redis.url,
    });
    const url = new URL(started.url);
    const clients = [0, 1, 2, 3].map(() => {
      const es = new EventSource(url);
      t.after(() => es.close());
      const got = { workers: [], messages: [] };
      es.addEventListener('hello', (e) => got.workers.push(e.data));
      es.onmessage = (e) => got.messages.push(e.data);
      return { es, got };
    });
    // Each worker awaits ready before it serves, and subscribes a first
    // connection at once: the hello comes after.
    await until(() => clients.every((c) => c.got.workers.length === 1), 10_000, 'the hellos');
    for (const text of ['one', 'two']) {
      const response = await fetch(new URL(`/say?text=${text}`, url), { method: 'POST' });
      assert.equal(response.status, 200);
    }
    for (const { got } of clients) {
      await until(() => got.messages.length === 2, 10_000, 'both messages');
      assert.match(got.messages[0], /^one \(from worker \d+\)$/);
      assert.match(got.messages[1], /^two \(from worker \d+\)$/);
    }
  });

  test('Redis unreachable at start: ready rejects with a clear error', async () => {
    const port = await freePort();
    const channel = new Channel({ redis: { url: `redis://127.0.0.1:${port}`, stream: 'x' } });
    await assert.rejects(channel.ready, /Cannot connect to Redis at redis:\/\/127\.0\.0\.1/);
    await assert.rejects(channel.broadcast('x'), /Cannot connect to Redis/);
    await assert.rejects(channel.broadcast('x', { id: '1' }), TypeError);
  });
}

redisSuite(registerTests);
