// What the README's Guarantees table promises for the Redis-backed Channel,
// held against a real redis-server and two server processes on one stream:
// call order, entries written by other producers (or by hand), stop tokens
// across processes, and resuming a large backlog. Every client counts what
// it got, on the client side.
import test from 'node:test';
import assert from 'node:assert/strict';
import { redisForFile, startApp, redisSuite } from './redis-server.mjs';
import { until, tick, tallyEvents, compareStreamIds } from './helpers.mjs';

function registerTests() {
  const file = redisForFile('native-sse-guarantees');
  const nextStream = file.nextStream;

  /** Opens a tallying client on an app; closed after the test. */
  function client(t, app, { headers, query = '' } = {}) {
    const tally = tallyEvents(`${app.url}/events${query}`, { headers, keep: Infinity });
    t.after(() => tally.close());
    return tally;
  }

  async function subscribed(...tallies) {
    await until(() => tallies.every((c) => c.named.some((e) => e.type === 'subscribed')), 10_000, 'the subscriptions');
  }

  async function noWarnings(...apps) {
    for (const app of apps) assert.deepEqual((await app.stats()).warnings, []);
  }

  test('1,000 broadcasts issued without awaiting are appended and delivered in call order, on both processes', async (t) => {
    const stream = nextStream();
    const a = await startApp(t, file.redis, stream);
    const b = await startApp(t, file.redis, stream);
    const clients = [client(t, a), client(t, a), client(t, b), client(t, b)];
    await subscribed(...clients);
    // Both processes at once: each one's own calls keep their order.
    const [fromA, fromB] = await Promise.all([a.burst(1000, 'a'), b.burst(500, 'b')]);
    for (const outcomes of [fromA, fromB]) {
      assert.ok(
        outcomes.every((o) => typeof o.id === 'string'),
        JSON.stringify(outcomes.find((o) => !o.id)),
      );
      const ids = outcomes.map((o) => o.id);
      for (let i = 1; i < ids.length; i++)
        assert.ok(compareStreamIds(ids[i - 1], ids[i]) < 0, `id ${i} follows id ${i - 1}`);
    }
    for (const tally of clients) {
      await until(() => tally.count >= 1500, 15_000, '1,500 events');
      await tick(50);
      assert.equal(tally.count, 1500);
      assert.equal(tally.outOfOrder, 0);
      const own = (prefix) => tally.events.filter((e) => e.data.startsWith(prefix)).map((e) => e.data);
      assert.deepEqual(
        own('a'),
        fromA.map((_, i) => `a${i}`),
      );
      assert.deepEqual(
        own('b'),
        fromB.map((_, i) => `b${i}`),
      );
      // Each event carries the id its broadcast resolved to.
      const idOf = new Map(tally.events.map((e) => [e.data, e.id]));
      assert.equal(idOf.get('a999'), fromA[999].id);
      assert.equal(idOf.get('b0'), fromB[0].id);
    }
    await noWarnings(a, b);
  });

  test('entries written by hand that no client could be sent are skipped, reported once, and crash nothing', async (t) => {
    const stream = nextStream();
    const a = await startApp(t, file.redis, stream);
    const b = await startApp(t, file.redis, stream);
    const clients = [client(t, a), client(t, b)];
    // A client that can hold 2 KiB at most, on A.
    const small = client(t, a, { query: '?maxBufferedBytes=2048' });
    await subscribed(...clients, small);
    const before = (await a.publish('before')).body;
    await until(() => small.count === 1 && clients.every((c) => c.count === 1), 5000, 'the first event');

    const bad = [
      ['d', 'x', 'e', 'x\r\ndata: forged\r\nid: 1'], // a name with CR/LF: would inject fields
      ['e', 'no-data'], // no data field
      ['d', 'x', 'extra', 'field'], // a field this library never writes
      ['d', Buffer.from([0xff, 0xfe, 0x00])], // not UTF-8
      ['d', 'y', 'e', Buffer.from([0xc3])], // a name that is not UTF-8
      ['d', 'one', 'd', 'two'], // a field twice
    ];
    const replies = await file.redis.commands(bad.map((fields) => ['XADD', stream, '*', ...fields]));
    const badIds = replies.map(String);
    // Larger than the small client's cap; the others can take it.
    const [bigId] = (await file.redis.commands([['XADD', stream, '*', 'd', 'B'.repeat(5000)]])).map(String);
    const after = (await a.publish('after')).body;

    for (const tally of clients) {
      await until(() => tally.count === 3, 10_000, 'the good entries');
      await tick(100);
      assert.deepEqual(
        tally.events.map((e) => [e.id, e.data.slice(0, 1)]),
        [
          [before, 'b'],
          [bigId, 'B'],
          [after, 'a'],
        ],
      );
      assert.equal(tally.events[1].data.length, 5000);
      assert.deepEqual(
        tally.named.filter((e) => e.type !== 'subscribed'),
        [],
        'nothing injected',
      );
      assert.equal(tally.ended, false, 'the stream goes on');
    }
    // The small client was cut off as a slow consumer, with nothing after
    // what it missed.
    await until(() => small.ended, 5000, 'the small client to be cut off');
    assert.deepEqual(
      small.events.map((e) => e.id),
      [before],
    );

    // Reconnecting, it is replayed the stream without the entry it can never
    // take (and told the replay is not complete), then goes on live.
    const back = client(t, a, { query: '?maxBufferedBytes=2048', headers: { 'Last-Event-ID': before } });
    await until(() => back.named.some((e) => e.type === 'subscribed'), 5000, 'the resumed subscription');
    assert.deepEqual(JSON.parse(back.named.find((e) => e.type === 'subscribed').data), {
      replayed: 1,
      complete: false,
    });
    const live = (await b.publish('live')).body;
    await until(() => back.count === 2, 5000, 'the live event');
    assert.deepEqual(
      back.events.map((e) => e.id),
      [after, live],
    );

    // Both processes are alive, and each reported each bad entry once.
    for (const app of [a, b]) {
      const { diagnostics, warnings } = await app.stats();
      assert.equal(diagnostics.skippedStreamEntries, bad.length);
      const skipped = warnings.filter((w) => w.code === 'ERR_SSE_REDIS_BAD_ENTRY');
      assert.equal(skipped.length, bad.length);
      for (const id of badIds) assert.equal(skipped.filter((w) => w.message.includes(` ${id} `)).length, 1, id);
      assert.match(skipped[0].message, /line break/);
      assert.match(skipped[1].message, /no "d" \(data\) field/);
      assert.match(skipped[2].message, /unknown field "extra"/);
      assert.match(skipped[3].message, /not UTF-8/);
    }
    // Only A had a client too small for the big entry; it says so once,
    // though the entry met that client twice (live, then in its replay).
    const oversized = (await a.stats()).warnings.filter((w) => w.code === 'ERR_SSE_REDIS_ENTRY_TOO_LARGE');
    assert.equal(oversized.length, 1);
    assert.ok(oversized[0].message.includes(bigId));
    assert.equal((await a.stats()).diagnostics.oversizedStreamEntries, 1);
  });

  test('broadcast refuses, before Redis, what no local rule allows', async (t) => {
    const stream = nextStream();
    const a = await startApp(t, file.redis, stream);
    const small = client(t, a, { query: '?maxBufferedBytes=2048' });
    await subscribed(small);
    const crlf = await a.publish('x', { event: 'a\r\nb' });
    assert.equal(crlf.status, 400, crlf.body);
    assert.match(crlf.body, /options\.event/);
    const big = await a.publish('x'.repeat(5000));
    assert.equal(big.status, 400, big.body);
    assert.match(big.body, /too large/);
    const [length] = await file.redis.commands([['XLEN', stream]]);
    assert.equal(length, 0, 'nothing was appended');
    assert.equal(small.ended, false);
  });

  test('a client stopped by one process is refused (204) by the other; a forged or expired token is not', async (t) => {
    const stream = nextStream();
    const a = await startApp(t, file.redis, stream);
    const b = await startApp(t, file.redis, stream);
    const stopped = client(t, a);
    await subscribed(stopped);
    await a.stopAll();
    await until(() => stopped.ended, 5000, 'the stream to end');
    const farewell = stopped.named.find((e) => e.type === 'native-sse:stop');
    assert.ok(farewell, 'the farewell frame came');
    assert.match(farewell.id, /^[0-9a-f]{80}$/);

    const again = client(t, b, { headers: { 'Last-Event-ID': farewell.id } });
    await until(() => again.status !== 0, 5000, 'the answer');
    assert.equal(again.status, 204);

    const forged = `${farewell.id.slice(0, 70)}${farewell.id.slice(70) === '0000000000' ? '1111111111' : '0000000000'}`;
    const notStopped = client(t, b, { headers: { 'Last-Event-ID': forged } });
    await until(() => notStopped.status !== 0, 5000, 'the answer');
    assert.equal(notStopped.status, 200);

    // A process whose tokens are honoured for 300 ms.
    const brief = await startApp(t, file.redis, stream, { STOP_MAX_AGE: '300' });
    const shortLived = client(t, brief);
    await subscribed(shortLived);
    await brief.stopAll();
    await until(() => shortLived.ended, 5000, 'the stream to end');
    const token = shortLived.named.find((e) => e.type === 'native-sse:stop').id;
    const soon = client(t, b, { headers: { 'Last-Event-ID': token } });
    await until(() => soon.status !== 0, 5000, 'the answer');
    assert.equal(soon.status, 204, 'honoured while fresh');
    await tick(400);
    const late = client(t, b, { headers: { 'Last-Event-ID': token } });
    await until(() => late.status !== 0, 5000, 'the answer');
    assert.equal(late.status, 200, 'expired');
  });

  test('five clients resume a 200,000-entry backlog at once: all of it, in order, in bounded memory, while broadcasts go on', async (t) => {
    const stream = nextStream();
    const backlog = 200_000;
    const commands = [];
    for (let i = 0; i < backlog; i++) commands.push(['XADD', stream, '*', 'd', `backlog ${i}`]);
    const ids = (await file.redis.commands(commands)).map(String);
    const a = await startApp(t, file.redis, stream, { MAX_LEN: '0' });
    const b = await startApp(t, file.redis, stream, { MAX_LEN: '0' });
    const baseline = await Promise.all([a.stats(true), b.stats(true)]);
    const from = ids[0];
    const clients = [a, a, a, b, b].map((app) => client(t, app, { headers: { 'Last-Event-ID': from } }));

    // Broadcasts go on from both processes while the clients catch up.
    const outcomes = [];
    for (let round = 0; round < 20; round++) {
      outcomes.push(...(await (round % 2 ? b : a).burst(10, `live${round}-`)));
      await tick(25);
    }
    const appended = outcomes.filter((o) => o.id).map((o) => o.id);
    const refused = outcomes.filter((o) => !o.id);
    // A broadcast reported failed was not appended: it reaches no client.
    assert.deepEqual(refused, [], 'no broadcast failed while Redis was up');
    const expected = backlog - 1 + appended.length;
    for (const tally of clients) {
      await until(() => tally.count >= expected, 60_000, `${expected} events`);
      await tick(50);
      assert.equal(tally.count, expected);
      assert.equal(tally.outOfOrder, 0, 'in order, none twice');
      assert.equal(tally.firstId, ids[1]);
      assert.equal(tally.lastId, appended.at(-1));
      // Replayed from the stream: the backlog, and the live entries appended
      // before it caught up.
      const { replayed, complete } = JSON.parse(tally.named.find((e) => e.type === 'subscribed').data);
      assert.ok(replayed >= backlog - 1 && replayed <= expected, `replayed ${replayed}`);
      assert.equal(complete, true);
    }
    const after = await Promise.all([a.stats(), b.stats()]);
    const report = after.map((s, i) => ({
      rssGrowthMiB: +((s.peakRss - baseline[i].rss) / 2 ** 20).toFixed(1),
      longestStallMs: +s.maxStall.toFixed(1),
    }));
    t.diagnostic(`resume of ${backlog} entries × 5 clients: ${JSON.stringify(report)}`);
    for (const { rssGrowthMiB, longestStallMs } of report) {
      assert.ok(rssGrowthMiB < 64, `RSS grew ${rssGrowthMiB} MiB`);
      // Pages are taken a few at a time, as the clients read them. The
      // figure itself (tens of ms) is `npm run bench`'s (resume rows); this
      // bound holds on a loaded machine and catches a stall of seconds.
      assert.ok(longestStallMs < 2000, `the event loop stalled ${longestStallMs} ms`);
    }
    await noWarnings(a, b);
  });
}

redisSuite(registerTests);
