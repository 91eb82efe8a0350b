// Many channels on one Redis, across two server processes: a channel per
// room, 100,000 per process, on one shared link whose connections do not
// grow with the channels; and the link's outcomes when Redis dies under a
// pipeline. Every client counts what it got, on the client side.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Redis, redisSuite, startApp, startRooms, redisCommands } from './redis-server.mjs';
import { until, tallyEvents, compareStreamIds, serve } from './helpers.mjs';
import { EventEndpoint, Channel } from 'native-sse';

/** `count` distinct numbers below `below`, from a seeded generator. */
function sample(count, below, seed) {
  let state = seed;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % below;
  };
  const picked = new Set();
  while (picked.size < count) picked.add(next());
  return [...picked];
}

function registerTests() {
  test('100,000 channels per process on one link: Redis connections stay constant, creation takes seconds, broadcasts to 1,000 random channels are delivered exactly once, in order, on both processes', async (t) => {
    const redis = await Redis.start({ durable: false });
    t.after(() => redis.stop());
    const rooms = 100_000;
    const apps = [await startRooms(t, redis, rooms, 'room'), await startRooms(t, redis, rooms, 'room')];
    const picked = sample(1_000, rooms, 7);
    // One subscriber per picked room on each process.
    const clients = apps.map((app) =>
      picked.map((room) => tallyEvents(`${app.url}/events?rooms=${room}`, { keep: Infinity })),
    );
    t.after(() => {
      for (const list of clients) for (const c of list) c.close();
    });
    await until(
      () => clients.every((list) => list.every((c) => c.named.some((e) => e.type === 'subscribed'))),
      60_000,
      '2,000 subscriptions',
    );
    // Two broadcasts per picked room, one from each process, issued at once.
    const [fromA, fromB] = await Promise.all([
      apps[0].burst(picked.map((room) => [room, `a${room}`])),
      apps[1].burst(picked.map((room) => [room, `b${room}`])),
    ]);
    for (const outcome of [...fromA, ...fromB]) assert.equal(typeof outcome.id, 'string', JSON.stringify(outcome));
    // What each room's client must get: both broadcasts, in stream order.
    const expected = picked.map((room, i) =>
      [
        { id: fromA[i].id, data: `a${room}` },
        { id: fromB[i].id, data: `b${room}` },
      ].sort((x, y) => compareStreamIds(x.id, y.id)),
    );
    for (const list of clients) {
      await until(() => list.every((c) => c.count >= 2), 30_000, 'every room to get its two events');
      for (let i = 0; i < picked.length; i++) {
        assert.deepEqual(list[i].events, expected[i], `room ${picked[i]}`);
      }
    }
    for (const app of apps) {
      const stats = await app.stats();
      assert.equal(stats.subscribed, picked.length);
      // A publisher, a pub/sub follower and a pool of two reading
      // connections, however many channels.
      assert.ok(stats.redisConnections <= 4, `${stats.redisConnections} Redis connections`);
      // Seconds, not minutes (a connection per channel took minutes, and
      // ran out of connections at 5,000).
      assert.ok(stats.setup.readyMs < 120_000, `${stats.setup.readyMs} ms to make the channels ready`);
      assert.deepEqual(stats.warnings, []);
      // What an idle channel holds in the heap (0.3 KiB under Node 20 to
      // 26): one regression, such as an EventTarget made for every channel
      // (0.4 KiB), would cross this.
      assert.ok(stats.setup.heapPerChannel < 512, `${stats.setup.heapPerChannel} heap bytes per idle channel`);
      t.diagnostic(
        `${rooms} channels ready in ${(stats.setup.readyMs / 1000).toFixed(1)} s; ` +
          `${stats.redisConnections} Redis connections; ` +
          `idle channel: ${(stats.setup.rssPerChannel / 1024).toFixed(2)} KiB RSS, ` +
          `${(stats.setup.heapPerChannel / 1024).toFixed(2)} KiB heap`,
      );
    }
  });

  test('an endpoint on three channels, disconnected while all three go on, resumes all three exactly from its one Last-Event-ID, on either process', async (t) => {
    const redis = await Redis.start({ durable: false });
    t.after(() => redis.stop());
    const apps = [await startRooms(t, redis, 10, 'topic'), await startRooms(t, redis, 10, 'topic')];
    const three = [1, 4, 7];
    const path = `/events?rooms=${three.join(',')}`;
    /** What each room was sent, by stream id: [{ id, data }]. */
    const sent = new Map(three.map((room) => [room, []]));
    let tag = 0;
    /** Ten broadcasts to each of the three rooms from each process, at once. */
    const round = async () => {
      const lists = apps.map(() =>
        three.flatMap((room) => Array.from({ length: 10 }, () => [room, `${room}/${tag++}`])),
      );
      const outcomes = await Promise.all(apps.map((app, i) => app.burst(lists[i])));
      for (const [i, list] of outcomes.entries()) {
        for (const [j, outcome] of list.entries()) {
          const [room, data] = lists[i][j];
          assert.equal(typeof outcome.id, 'string', JSON.stringify(outcome));
          sent.get(room).push({ id: outcome.id, data });
        }
      }
    };
    const subscribed = (client) => client.named.find((e) => e.type === 'subscribed');
    /** The events a client got, by room (the room is in the data). */
    const byRoom = (events) => {
      const rooms = new Map(three.map((room) => [room, []]));
      for (const { data } of events) rooms.get(Number(data.split('/')[0])).push(data);
      return rooms;
    };
    for (const [from, to] of [
      [0, 1],
      [1, 0],
    ]) {
      for (const list of sent.values()) list.length = 0;
      const before = tallyEvents(`${apps[from].url}${path}`, { keep: Infinity });
      t.after(() => before.close());
      await until(() => subscribed(before), 20_000, 'the first connection to subscribe');
      await round();
      await until(() => before.count === 60, 20_000, 'the first round on the first connection');
      before.close();
      // All three go on while the client is away.
      await round();
      await round();
      const lastEventId = before.events.at(-1).id;
      // One id says where the client is in each stream.
      const cursors = new URLSearchParams(lastEventId);
      assert.deepEqual([...cursors.keys()].sort(), three.map((room) => `topic:${room}`).sort(), lastEventId);
      const after = tallyEvents(`${apps[to].url}${path}`, {
        keep: Infinity,
        headers: { 'last-event-id': lastEventId },
      });
      t.after(() => after.close());
      // A round goes on while the three streams are replayed: each live
      // entry reaches the client once, replayed or live.
      const during = round();
      await until(() => subscribed(after), 20_000, 'the resumed connection to subscribe');
      const results = JSON.parse(subscribed(after).data);
      assert.deepEqual(
        results.map((r) => r.complete),
        [true, true, true],
      );
      const replayed = results.reduce((n, r) => n + r.replayed, 0);
      assert.ok(replayed >= 120 && replayed <= 180, `${replayed} replayed`);
      await during;
      await until(() => after.count >= 180, 20_000, 'the missed rounds and the next one');
      // Each room: exactly what was appended to its stream, in stream
      // order, across the two connections: no gap, no duplicate.
      const got = byRoom([...before.events, ...after.events]);
      for (const room of three) {
        const expected = sent
          .get(room)
          .sort((x, y) => compareStreamIds(x.id, y.id))
          .map((e) => e.data);
        assert.deepEqual(got.get(room), expected, `room ${room}, from process ${from} to ${to}`);
      }
      // The ids go on saying where the client is in each stream.
      const last = new URLSearchParams(after.events.at(-1).id);
      for (const room of three) {
        assert.equal(last.get(`topic:${room}`), sent.get(room).at(-1).id, `room ${room}`);
      }
      after.close();
    }
    for (const app of apps) assert.deepEqual((await app.stats()).warnings, []);
  });

  test('an endpoint on two channels whose streams share a key on two databases keeps a cursor in each, and resumes both exactly from its one Last-Event-ID', async (t) => {
    const redis = await Redis.start({ durable: false });
    t.after(() => redis.stop());
    const dbs = [0, 1].map((db) => new Channel({ redis: { url: `${redis.url}/${db}`, stream: 'news' } }));
    t.after(() => {
      for (const channel of dbs) channel.close();
    });
    await Promise.all(dbs.map((channel) => channel.ready));
    const app = await serve((req, res) => {
      const endpoint = new EventEndpoint(req, res);
      Promise.all(dbs.map((channel) => channel.subscribe(endpoint))).then((results) => {
        if (!endpoint.closed) endpoint.sendEvent('subscribed', JSON.stringify(results));
      });
    });
    t.after(() => app.close());
    const url = `http://127.0.0.1:${app.port}/events`;
    const sent = [];
    const round = async (n) => {
      for (let i = 0; i < n; i++) {
        for (const [db, channel] of dbs.entries()) {
          const data = `${db}/${sent.length}`;
          sent.push({ id: await channel.broadcast(data), data });
        }
      }
    };
    const subscribed = (client) => client.named.find((e) => e.type === 'subscribed');
    const before = tallyEvents(url, { keep: Infinity });
    t.after(() => before.close());
    await until(() => subscribed(before), 10_000, 'the first connection');
    await round(3);
    await until(() => before.count === 6, 10_000, 'the first round');
    before.close();
    await round(2);
    const lastEventId = before.events.at(-1).id;
    // Both streams are named by their key and their database's tag.
    const names = [...new URLSearchParams(lastEventId).keys()];
    assert.equal(names.length, 2, lastEventId);
    assert.ok(names.every((name) => /^news@[0-9a-f]{8}$/.test(name)) && names[0] !== names[1], lastEventId);
    const after = tallyEvents(url, { keep: Infinity, headers: { 'last-event-id': lastEventId } });
    t.after(() => after.close());
    await until(() => subscribed(after), 10_000, 'the resumed connection');
    assert.deepEqual(JSON.parse(subscribed(after).data), [
      { replayed: 2, complete: true },
      { replayed: 2, complete: true },
    ]);
    await until(() => after.count === 4, 10_000, 'what was missed');
    assert.deepEqual(
      [...before.events, ...after.events].map((e) => e.data).sort(),
      sent.map((e) => e.data).sort(),
      'every event once',
    );
  });

  test('an endpoint on one Redis-backed channel too many is refused with ERR_SSE_TOO_MANY_CHANNELS, and keeps the others', async (t) => {
    const redis = await Redis.start({ durable: false });
    t.after(() => redis.stop());
    // Keys of 202 bytes: a pair of the id takes 244 bytes and a separator,
    // so 16 fit under 4096.
    const key = 'k'.repeat(200);
    const channels = Array.from(
      { length: 20 },
      (_, i) => new Channel({ redis: { url: redis.url, stream: `${key}${String(i).padStart(2, '0')}` } }),
    );
    t.after(() => {
      for (const channel of channels) channel.close();
    });
    await Promise.all(channels.map((channel) => channel.ready));
    let settled;
    const server = await serve(async (req, res) => {
      const endpoint = new EventEndpoint(req, res);
      settled = await Promise.allSettled(channels.map((channel) => channel.subscribe(endpoint)));
    });
    t.after(() => server.close());
    const client = tallyEvents(`${server.url}events`, { keep: Infinity });
    t.after(() => client.close());
    await until(() => settled !== undefined, 20_000, 'the subscriptions to settle');
    const refused = settled.filter((s) => s.status === 'rejected');
    assert.equal(settled.length - refused.length, 16);
    for (const { reason } of refused) {
      assert.ok(reason instanceof RangeError, String(reason));
      assert.equal(reason.code, 'ERR_SSE_TOO_MANY_CHANNELS');
      assert.match(reason.message, /"endpoint" argument .* 4096/);
    }
    assert.deepEqual(
      channels.map((channel) => channel.size),
      channels.map((_, i) => (i < 16 ? 1 : 0)),
    );
    const id = await channels[3].broadcast('to the fourth');
    await until(() => client.count === 1, 20_000, 'the broadcast');
    assert.equal(client.events[0].data, 'to the fourth');
    const cursors = new URLSearchParams(client.events[0].id);
    assert.equal([...cursors.keys()].length, 16);
    assert.equal(cursors.get(`${key}03`), id);
    assert.ok(client.events[0].id.length <= 4096);
  });

  test('a channel left before its stream is followed is not followed after (Redis holds no subscription for it)', async (t) => {
    const redis = await Redis.start({ durable: false });
    t.after(() => redis.stop());
    const left = new Channel({ redis: { url: redis.url, stream: 'left-at-once' } });
    const kept = new Channel({ redis: { url: redis.url, stream: 'kept' } });
    t.after(() => {
      left.close();
      kept.close();
    });
    await Promise.all([left.ready, kept.ready]);
    const numsub = async (stream) => Number((await redisCommands(redis.port, [['PUBSUB', 'NUMSUB', stream]]))[0][1]);
    const endpoints = [];
    const server = await serve((req, res) => {
      const endpoint = new EventEndpoint(req, res);
      endpoints.push(endpoint);
      if (req.url === '/left') {
        // Subscribed, then gone in the same turn: the follow's mark is
        // still queued when the channel stops following.
        left.subscribe(endpoint);
        endpoint.close();
      } else {
        kept.subscribe(endpoint);
      }
    });
    t.after(() => server.close());
    const emptied = new Promise((resolve) => left.addEventListener('empty', resolve, { once: true }));
    // Redis busy for a moment: the follow's mark waits, so the channel is
    // left before its stream is followed.
    const busy = redisCommands(redis.port, [['DEBUG', 'SLEEP', '0.5']]);
    const first = tallyEvents(`${server.url}left`);
    t.after(() => first.close());
    await emptied;
    await busy;
    // The follower takes its orders in queue order: once it follows the
    // stream queued after, it has dealt with both orders for the first.
    const second = tallyEvents(`${server.url}kept`);
    t.after(() => second.close());
    await until(async () => (await numsub('kept')) === 1, 20_000, 'the kept stream to be followed');
    assert.equal(await numsub('left-at-once'), 0);
  });

  test('Redis killed under a burst of pipelines and restarted: every broadcast ends appended or not appended, none unknown, and each appended one reaches both processes exactly once', async (t) => {
    // Durable: what Redis acknowledged survives the kill.
    const redis = await Redis.start();
    t.after(() => redis.stop());
    const stream = 'killed-mid-pipeline';
    const a = await startApp(t, redis, stream, { MAX_LEN: '0' });
    const b = await startApp(t, redis, stream, { MAX_LEN: '0' });
    const clients = [a, b].map((app) => tallyEvents(`${app.url}/events`, { keep: Infinity }));
    t.after(() => {
      for (const c of clients) c.close();
    });
    await until(() => clients.every((c) => c.named.some((e) => e.type === 'subscribed')), 10_000, 'the subscriptions');
    // A burst, with Redis killed once it is under way. Before the kill,
    // writes are paused (CLIENT PAUSE WRITE holds every script and XADD) and
    // the stream's length read: shorter than the burst, the kill lands
    // while broadcasts are still unanswered, whatever the machine's speed.
    // On a fast machine a burst may end before the pause lands; then a
    // burst twice as long is tried (each one's outcomes are checked alike).
    const appended = [];
    let cut = false;
    for (let attempt = 0; attempt < 3 && !cut; attempt++) {
      const before = Number((await redis.commands([['XLEN', stream]]))[0]);
      const prefix = `k${attempt}-`;
      const n = 20_000 * 2 ** attempt;
      const burst = a.burst(n, prefix);
      await until(
        async () => Number((await redis.commands([['XLEN', stream]]))[0]) > before + 500,
        10_000,
        'the burst to be under way',
      );
      const [, length] = await redis.commands([
        ['CLIENT', 'PAUSE', '60000', 'WRITE'],
        ['XLEN', stream],
      ]);
      cut = Number(length) < before + n;
      await redis.kill();
      await redis.run();
      const outcomes = await burst;
      const unknown = outcomes.filter((o) => o.code === 'ERR_SSE_REDIS_OUTCOME_UNKNOWN');
      assert.deepEqual(unknown, [], 'no outcome is left unknown once Redis is back');
      let lost = 0;
      outcomes.forEach((o, i) => {
        if (o.id !== undefined) appended.push({ id: o.id, data: `${prefix}${i}` });
        else {
          assert.equal(o.code, 'ERR_SSE_REDIS_NOT_APPENDED', JSON.stringify(o));
          lost++;
        }
      });
      t.diagnostic(
        `burst ${attempt + 1}: ${Number(length) - before} of ${n} appended when the kill landed; ` +
          `${outcomes.length - lost} appended in the end, the rest not appended; none unknown`,
      );
    }
    assert.ok(cut, 'a kill landed under a burst');
    // The stream holds exactly the appended ones, in call order.
    const [entries] = await redis.commands([['XRANGE', stream, '-', '+']]);
    assert.deepEqual(
      entries.map(([id, fields]) => ({ id: String(id), data: String(fields[1]) })),
      appended,
    );
    // Each process's client got each of them once, in order.
    for (const client of clients) {
      await until(() => client.count >= appended.length, 30_000, `${appended.length} events`);
      assert.deepEqual(client.events, appended);
    }
  });
}

redisSuite(registerTests);
