// The Redis-backed Channel when the stream is changed under it: trimmed or
// deleted while a client is replayed, gone back to lower ids (a new Redis,
// a clock behind), unreadable for the channel's user, or made of entries of
// a megabyte. Each case ends with every event delivered once, in order, or
// with the application and the client told (complete: false and the
// incomplete event, a warning, a counter in diagnostics(), a rejection).
import test from 'node:test';
import assert from 'node:assert/strict';
import { EventEndpoint, Channel, diagnostics } from 'native-sse';
import { Redis, redisSuite } from './redis-server.mjs';
import { serve, until, tallyEvents, tallyElsewhere } from './helpers.mjs';

/** Warnings of this process with `code`, from now on. */
function warningsOf(t, code) {
  const seen = [];
  const listener = (warning) => {
    if (warning.code === code) seen.push(warning);
  };
  process.on('warning', listener);
  t.after(() => process.off('warning', listener));
  return seen;
}

/** A server whose endpoints subscribe to `channel`; `results` gets each
 * subscribe()'s result, in order of arrival. */
async function channelServer(t, channel, options = {}) {
  const endpoints = [];
  const results = [];
  const app = await serve((req, res) => {
    const endpoint = new EventEndpoint(req, res, { keepAlive: 0, ...options });
    endpoints.push(endpoint);
    Promise.resolve(channel.subscribe(endpoint)).then((result) => results.push(result));
  });
  t.after(() => {
    for (const endpoint of endpoints) endpoint.close();
    app.close();
  });
  return { url: `http://127.0.0.1:${app.port}/`, endpoints, results };
}

async function startRedis(t, options = { durable: false }) {
  const redis = await Redis.start(options);
  t.after(() => redis.stop());
  return redis;
}

async function redisChannel(t, redis, stream, options = {}) {
  const channel = new Channel({ redis: { url: redis.url, stream }, ...options });
  t.after(() => channel.close());
  await channel.ready;
  return channel;
}

function registerTests() {
  for (const [name, change] of [
    ['XTRIM MAXLEN 100', (stream) => ['XTRIM', stream, 'MAXLEN', '100']],
    ['DEL', (stream) => ['DEL', stream]],
  ]) {
    test(`${name} on the stream while a client is replayed its backlog: the resume says it is incomplete, and the client gets the incomplete event`, async (t) => {
      const redis = await startRedis(t);
      const stream = `trim-${name.split(' ')[0]}`;
      const channel = await redisChannel(t, redis, stream, { incompleteEvent: 'resync' });
      const ids = await Promise.all(
        Array.from({ length: 5000 }, (_, i) => channel.broadcast(`${i}:`.padEnd(4000, 'b'))),
      );
      // The client below does not read for as long as the test needs: it is
      // not to be cut off as a slow consumer meanwhile (on a busy machine
      // the test may take longer than the default stallTimeout).
      const server = await channelServer(t, channel, { stallTimeout: 120_000 });
      // A client that resumes from the first entry and does not read yet:
      // the replay waits for it after a page or two, 20 MB behind.
      const writtenBefore = diagnostics().bytesWritten;
      const client = tallyEvents(server.url, { headers: { 'Last-Event-ID': ids[0] }, paused: true });
      t.after(() => client.close());
      // Under way: bytes wait in Rust for the client, or (adopted: the
      // replay is paced to what the kernel takes) its socket's buffers hold
      // a MiB or more of it.
      await until(
        () =>
          server.endpoints.length === 1 &&
          (server.endpoints[0].bufferedAmount > 64 * 1024 || diagnostics().bytesWritten - writtenBefore > 1 << 20),
        60_000,
        'the replay to wait for the client',
      ).catch((err) => {
        err.message += `; bufferedAmount ${server.endpoints[0]?.bufferedAmount}, client got ${client.bytes} bytes, diagnostics ${JSON.stringify(diagnostics())}`;
        throw err;
      });
      assert.equal(server.results.length, 0, 'the resume is under way');
      await redis.commands([change(stream)]);
      // The stream goes on: a resume that reads on past the gap must still
      // see it.
      const later = await Promise.all(Array.from({ length: 50 }, (_, i) => channel.broadcast(`later ${i}`)));
      client.resume();
      await until(() => server.results.length === 1, 30_000, 'the resume to end');
      const [result] = server.results;
      assert.equal(result.complete, false, `the resume is known to be incomplete: ${JSON.stringify(result)}`);
      await until(() => client.named.some((e) => e.type === 'resync'), 10_000, 'the incomplete event');
      const resync = client.named.find((e) => e.type === 'resync');
      assert.deepEqual(JSON.parse(resync.data), { lastEventId: ids[0], replayed: result.replayed });
      assert.equal(client.outOfOrder, 0, 'nothing twice, nothing out of order');
      assert.ok(client.count < 4999, `entries were removed before they were replayed (${client.count} arrived)`);
      await until(() => client.lastId === later.at(-1), 10_000, 'what was appended after the change');
      // And it goes on live.
      const live = await channel.broadcast('live');
      await until(() => client.lastId === live, 10_000, 'the live broadcast');
    });
  }

  test('a stream that went back (emptied and refilled, then a new Redis whose ids are behind): the channel goes on from where the new timeline begins, warns, counts it, and tells live clients when it lost track during an outage', async (t) => {
    const redis = await startRedis(t);
    const stream = 'rewound';
    const rewinds = warningsOf(t, 'ERR_SSE_REDIS_REWOUND');
    const before = diagnostics().streamRewinds;
    const channel = await redisChannel(t, redis, stream, { incompleteEvent: 'resync' });
    const server = await channelServer(t, channel);
    const clients = [0, 1, 2].map(() => tallyEvents(server.url));
    t.after(() => {
      for (const c of clients) c.close();
    });
    await until(() => server.results.length === 3, 10_000, 'three live subscribers');
    // An entry ten minutes ahead of this clock, written by hand (with the
    // notice another producer publishes, as the README says): the follower
    // reads past it, as it would past the ids of a Redis whose clock is
    // ahead of the next one's.
    const ahead = async () => {
      const id = `${Date.now() + 600_000}-0`;
      await redis.commands([
        ['XADD', stream, id, 'd', 'ahead'],
        ['PUBLISH', stream, id],
      ]);
      await until(() => clients.every((c) => c.lastId === id), 10_000, 'the entry ahead');
      return id;
    };
    const broadcastAll = async (n, prefix) => {
      const sent = [];
      for (let i = 0; i < n; i++) {
        const deadline = performance.now() + 15_000;
        for (;;) {
          const id = await channel.broadcast(`${prefix} ${i}`).catch((err) => err);
          if (typeof id === 'string') {
            sent.push(id);
            break;
          }
          if (performance.now() > deadline) throw id;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      return sent;
    };
    // The same Redis, the stream deleted and written again: lower ids.
    await ahead();
    await redis.commands([['DEL', stream]]);
    const afterDel = await broadcastAll(10, 'after DEL');
    for (const client of clients) {
      await until(() => client.count === 11 && client.lastId === afterDel.at(-1), 10_000, 'the broadcasts after DEL');
      assert.deepEqual(
        client.events.slice(1).map((e) => e.id),
        afterDel,
      );
    }
    // A new, empty Redis on the same port, reached after a reconnect.
    const farAhead = await ahead();
    await redis.kill();
    await redis.run();
    const afterRestart = await broadcastAll(10, 'after restart');
    for (const client of clients) {
      await until(() => client.lastId === afterRestart.at(-1), 15_000, 'the broadcasts after the restart');
      assert.deepEqual(
        client.events.slice(12).map((e) => e.id),
        afterRestart,
      );
      assert.equal(client.count, 22);
      // Deleted on the same server, read on at once: nothing could be
      // missed. Found empty after an outage: what was written between the
      // outage and the reconnect may have been, and the client is told.
      assert.deepEqual(
        client.named.filter((e) => e.type === 'resync').map((e) => JSON.parse(e.data)),
        [{ lastEventId: farAhead, replayed: 0 }],
      );
    }
    assert.ok(rewinds.length >= 2, `${rewinds.length} ERR_SSE_REDIS_REWOUND warnings`);
    assert.ok(diagnostics().streamRewinds >= before + 2);
    // A client whose id is of the old timeline is told, and then served live.
    const resumer = tallyEvents(server.url, { headers: { 'Last-Event-ID': farAhead } });
    t.after(() => resumer.close());
    await until(() => server.results.length === 4, 10_000, 'the resume');
    assert.equal(server.results[3].complete, false);
    const live = await channel.broadcast('live');
    await until(() => resumer.lastId === live, 10_000, 'a live broadcast to the resumed client');
  });

  test('the last entry delivered gone while entries below and after it are there (another timeline, as an old master that answers late after a split brain): the channel goes back to the newest entry both have, so none is skipped; a stream that lost everything up to it tells the client', async (t) => {
    const redis = await startRedis(t);
    const stream = 'timeline';
    const rewinds = warningsOf(t, 'ERR_SSE_REDIS_REWOUND');
    const channel = await redisChannel(t, redis, stream, { incompleteEvent: 'resync' });
    const server = await channelServer(t, channel);
    const client = tallyEvents(server.url);
    t.after(() => client.close());
    await until(() => server.results.length === 1, 10_000, 'a live subscriber');
    // Ids written by hand (with the notice another producer publishes),
    // ahead of this clock so that the channel's own ids never mix in.
    const base = Date.now() + 600_000;
    const id = (k) => `${base + k}-0`;
    const notice = (k) => redis.commands([['PUBLISH', stream, id(k)]]);
    for (const [k, text] of [
      [0, 'a'],
      [10, 'b'],
      [20, 'x'],
    ]) {
      await redis.commands([['XADD', stream, id(k), 'd', text]]);
      await notice(k);
    }
    await until(() => client.lastId === id(20), 10_000, 'the first timeline');
    // Another timeline, made in one step: a and b, then c below x and d
    // after it; x is not there. Reading on after x would skip c.
    await redis.commands([
      ['MULTI'],
      ['DEL', stream],
      ...[
        [0, 'a'],
        [10, 'b'],
        [15, 'c'],
        [30, 'd'],
      ].map(([k, text]) => ['XADD', stream, id(k), 'd', text]),
      ['EXEC'],
    ]);
    await notice(30);
    await until(() => client.events.some((e) => e.data === 'd'), 10_000, 'the entry after x');
    assert.deepEqual(
      client.events.map((e) => e.data),
      ['a', 'b', 'x', 'c', 'd'],
    );
    assert.deepEqual(client.named, [], 'nothing was missed: the client is not told');
    await until(() => rewinds.length === 1, 5000, 'the warning');
    assert.match(
      rewinds[0].message,
      new RegExp(`${id(20)}, the last entry it delivered, is not there; it goes on after ${id(10)}`),
    );
    // Everything up to d gone (trimmed past it, or deleted and written
    // again): what lay between may have been missed, and the client is told.
    await redis.commands([['MULTI'], ['DEL', stream], ['XADD', stream, id(40), 'd', 'e'], ['EXEC']]);
    await notice(40);
    await until(() => client.named.some((e) => e.type === 'resync'), 10_000, 'the incomplete event');
    await until(() => client.lastId === id(40), 10_000, 'the entry after the gap');
    assert.deepEqual(
      client.events.map((e) => e.data),
      ['a', 'b', 'x', 'c', 'd', 'e'],
    );
    assert.equal(rewinds.length, 2);
    // And it goes on live.
    const live = await channel.broadcast('live');
    await until(() => client.lastId === live, 10_000, 'a live broadcast');
    assert.equal(client.outOfOrder, 1, 'c, below x, is the one entry that came after a higher id');
  });

  test('a first subscriber is placed before subscribe() resolves: an entry another process appends after that reaches it, though the mark was queued behind a broadcast Redis held back', async (t) => {
    const redis = await startRedis(t);
    const stream = 'placed';
    const channel = await redisChannel(t, redis, stream);
    const server = await channelServer(t, channel);
    // Writes held back: this process's broadcast waits in Redis, and the
    // follow's mark (the stream's end, read in the publisher's queue) waits
    // behind it.
    await redis.commands([['CLIENT', 'PAUSE', '1500', 'WRITE']]);
    let appended = false;
    const held = channel.broadcast('held').then((id) => {
      appended = true;
      return id;
    });
    const client = tallyEvents(server.url);
    t.after(() => client.close());
    await until(() => server.results.length === 1, 10_000, 'subscribe() to resolve');
    assert.ok(appended, 'subscribe() resolved only once the follow knew where it starts (after the held broadcast)');
    await held;
    // Another producer appends now, with its notice.
    const [other] = await redis.commands([['XADD', stream, '*', 'd', 'other']]);
    await redis.commands([['PUBLISH', stream, String(other)]]);
    await until(() => client.lastId === String(other), 10_000, 'the entry appended after subscribe() resolved');
    assert.deepEqual(
      client.events.map((e) => e.data),
      ['other'],
    );
  });

  test('an ACL user that may XADD but not read the stream: ready rejects naming the command, one warning, diagnostics say so; read again once allowed', async (t) => {
    const redis = await startRedis(t);
    await redis.commands([
      ['ACL', 'SETUSER', 'writer', 'on', '>w-pass', '~*', '&*', '+@all', '-xread', '-xrange', '-xrevrange'],
    ]);
    const unreadable = warningsOf(t, 'ERR_SSE_REDIS_UNREADABLE');
    const failuresBefore = diagnostics().streamReadFailures;
    const channel = new Channel({
      redis: { url: `redis://writer:w-pass@127.0.0.1:${redis.port}`, stream: 'acl-read' },
    });
    t.after(() => channel.close());
    await assert.rejects(channel.ready, (err) => {
      assert.equal(err.code, 'ERR_SSE_REDIS_UNREADABLE');
      assert.match(err.message, /XREVRANGE/);
      assert.match(err.message, /no permissions/);
      assert.match(err.message, new RegExp(`redis://127\\.0\\.0\\.1:${redis.port}`));
      assert.doesNotMatch(err.message, /w-pass/);
      return true;
    });
    // Warnings are emitted on the next tick.
    await until(() => unreadable.length > 0, 5000, 'the warning');
    assert.equal(unreadable.length, 1);
    assert.equal(diagnostics().unreadableStreams, 1);
    assert.equal(diagnostics().streamReadFailures, failuresBefore + 1);
    // Broadcasts are still appended: they are in the stream for others.
    assert.match(await channel.broadcast('kept'), /^\d+-\d+$/);
    // Allowed to read, the channel reads once it has a subscriber, and says
    // the stream is readable again.
    await redis.commands([['ACL', 'SETUSER', 'writer', '+@all']]);
    const server = await channelServer(t, channel);
    const client = tallyEvents(server.url);
    t.after(() => client.close());
    await until(() => server.results.length === 1, 10_000, 'a subscriber');
    await until(() => diagnostics().unreadableStreams === 0, 15_000, 'the stream to be read again');
    const id = await channel.broadcast('read');
    await until(() => client.lastId === id, 10_000, 'the broadcast');
    assert.equal(unreadable.length, 1, 'one warning for the run of failures');
  });

  test('a resume of 1 MiB entries reads each entry from Redis about once, in pages sized to what the client can take (each page also reads again the entry it follows, to prove none was removed between)', async (t) => {
    const redis = await startRedis(t);
    const stream = 'big';
    const channel = await redisChannel(t, redis, stream);
    const entry = 'm'.repeat(1 << 20);
    const ids = [];
    for (let i = 0; i < 60; i++) ids.push(await channel.broadcast(`${i}:${entry}`));
    const sentBy = async () => {
      const [info] = await redis.commands([['INFO', 'stats']]);
      return Number(/total_net_output_bytes:(\d+)/.exec(String(info))[1]);
    };
    const server = await channelServer(t, channel);
    const before = await sentBy();
    const rssBefore = process.memoryUsage.rss();
    let peak = rssBefore;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
    t.after(() => clearInterval(sampler));
    const client = tallyElsewhere(t, server.url, { headers: { 'Last-Event-ID': ids[0] } });
    await until(() => server.results.length === 1, 60_000, 'the resume');
    clearInterval(sampler);
    assert.deepEqual(server.results[0], { replayed: 59, complete: true });
    await until(() => client.count === 59, 30_000, 'all 59 entries');
    assert.equal(client.outOfOrder, 0);
    const backlog = 59 * (1 << 20);
    const sent = (await sentBy()) - before;
    t.diagnostic(
      `Redis sent ${(sent / backlog).toFixed(2)}× the backlog; RSS grew ${((peak - rssBefore) / (1 << 20)).toFixed(1)} MiB`,
    );
    assert.ok(sent < 1.5 * backlog, `Redis sent ${(sent / backlog).toFixed(2)}× the backlog`);
    const growth = (peak - rssBefore) / (1 << 20);
    assert.ok(growth < 48, `RSS grew ${growth.toFixed(1)} MiB during the resume`);
  });
}

redisSuite(registerTests);
