// The Redis-backed Channel against Redis as production runs it: TLS with a
// private CA and client certificates, ACL users, a server that is down at
// start or refuses a command, a reply that never comes; and the channel's
// own lifecycle. No fault may reach an unhandled rejection, and no message
// may carry a password.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventEndpoint, Channel, diagnostics } from 'native-sse';
import { Redis, freePort, makeCertificates, redisSuite, signal } from './redis-server.mjs';
import { serve, until, tick, tallyEvents } from './helpers.mjs';

const unhandled = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

/** A node:http server whose /events subscribes to `channel`; the endpoints
 * and what subscribe() resolved to are kept for the test. */
async function serveChannel(t, channel) {
  const endpoints = [];
  const app = await serve((req, res) => {
    const endpoint = new EventEndpoint(req, res, { reconnectionTime: 20 });
    const entry = { endpoint, result: undefined };
    endpoints.push(entry);
    channel.subscribe(endpoint).then((result) => (entry.result = result));
  });
  t.after(() => app.close());
  return {
    endpoints,
    open(headers = {}) {
      const tally = tallyEvents(`http://127.0.0.1:${app.port}/events`, { headers });
      t.after(() => tally.close());
      return tally;
    },
  };
}

function registerTests() {
  test.afterEach(() => assert.deepEqual(unhandled, [], 'no unhandled rejection'));

  test('a Unix socket (redis+unix://, its database in the query): broadcasts are appended there and delivered; the URL is named without its query', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'native-sse-sock-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const socket = join(dir, 'redis.sock');
    const redis = await Redis.start({ extra: ['--unixsocket', socket, '--unixsocketperm', '700'] });
    t.after(() => redis.stop());
    const channel = new Channel({ redis: { url: `redis+unix://${socket}?db=2`, stream: 'over-a-socket' } });
    t.after(() => channel.close());
    await channel.ready;
    const app = await serveChannel(t, channel);
    const client = app.open();
    await until(() => app.endpoints[0]?.result !== undefined, 10_000, 'the subscription');
    assert.deepEqual(app.endpoints[0].result, { replayed: 0, complete: true });
    const id = await channel.broadcast('through the socket');
    await until(() => client.count === 1, 10_000, 'the event');
    assert.deepEqual(client.events, [{ id, data: 'through the socket' }]);
    const [, length, elsewhere] = await redis.commands([
      ['SELECT', '2'],
      ['XLEN', 'over-a-socket'],
      ['EXISTS', 'x'],
    ]);
    assert.equal(length, 1, 'appended to database 2');
    assert.equal(elsewhere, 0);
    const link = diagnostics().redis.find((l) => l.server.startsWith('redis+unix:'));
    assert.deepEqual([link.server, link.connected], [`redis+unix://${socket}`, true]);
    // Closed before its Redis stops: nobody waits on it then.
    channel.close();
  });

  test('rediss:// with a private CA and a client certificate; refused without them', async (t) => {
    const certs = makeCertificates();
    t.after(() => certs.remove());
    const redis = await Redis.start({ tls: certs.files });
    t.after(() => redis.stop());
    const url = `rediss://127.0.0.1:${redis.tlsPort}`;
    // PEM as strings and as Buffers, as tls.connect takes them.
    const channel = new Channel({
      redis: { url, stream: 'tls', tls: { ca: certs.ca, cert: Buffer.from(certs.clientCert), key: certs.clientKey } },
    });
    t.after(() => channel.close());
    await channel.ready;
    const app = await serveChannel(t, channel);
    const client = app.open();
    // ready waited for the reader's start: nothing appended from now is missed.
    await until(() => app.endpoints[0]?.result !== undefined, 5000, 'the subscription');
    const id = await channel.broadcast('over TLS');
    await until(() => client.count === 1, 5000, 'the event');
    assert.deepEqual(client.events, [{ id, data: 'over TLS' }]);

    const noClientCert = new Channel({ redis: { url, stream: 'tls', tls: { ca: certs.ca } } });
    t.after(() => noClientCert.close());
    await assert.rejects(noClientCert.ready, { code: 'ERR_SSE_REDIS_UNAVAILABLE' });
    const otherCa = makeCertificates();
    t.after(() => otherCa.remove());
    const untrusted = new Channel({
      redis: { url, stream: 'tls', tls: { ca: otherCa.ca, cert: certs.clientCert, key: certs.clientKey } },
    });
    t.after(() => untrusted.close());
    await assert.rejects(
      untrusted.ready,
      (err) => err.code === 'ERR_SSE_REDIS_UNAVAILABLE' && /certificate|Unknown/i.test(err.message),
    );
  });

  test('TLS options are checked up front, naming the argument', () => {
    const url = 'rediss://127.0.0.1:1';
    assert.throws(
      () => new Channel({ redis: { url: 'redis://127.0.0.1:1', stream: 's', tls: {} } }),
      /"options.redis.tls" argument needs a rediss:\/\/ URL/,
    );
    assert.throws(
      () => new Channel({ redis: { url, stream: 's', tls: { ca: 5 } } }),
      /"options.redis.tls.ca" argument must be a PEM string or Buffer/,
    );
    assert.throws(
      () => new Channel({ redis: { url, stream: 's', tls: { cert: '-----BEGIN CERTIFICATE-----' } } }),
      /"cert" and "key" together/,
    );
    assert.throws(
      () => new Channel({ redis: { url, stream: 's', tls: { ca: 'not a certificate' } } }),
      /"options.redis.tls.ca" argument must hold a PEM block of a certificate/,
    );
    assert.throws(
      () =>
        new Channel({
          redis: { url, stream: 's', tls: { cert: '-----BEGIN CERTIFICATE-----', key: '-----BEGIN CERTIFICATE-----' } },
        }),
      /"options.redis.tls.key" argument must hold a PEM block of a private key/,
    );
    assert.throws(
      () => new Channel({ redis: { url: 'http://u:secret@h', stream: 's' } }),
      (err) => err instanceof TypeError && !err.message.includes('secret'),
    );
  });

  test('ACL users; a wrong password is reported without it, or any password, in the message', async (t) => {
    const redis = await Redis.start();
    t.after(() => redis.stop());
    await redis.commands([['ACL', 'SETUSER', 'alice', 'on', '>s3cret-pass', '~*', '&*', '+@all']]);
    const good = new Channel({ redis: { url: `redis://alice:s3cret-pass@127.0.0.1:${redis.port}/0`, stream: 'acl' } });
    t.after(() => good.close());
    await good.ready;
    assert.match(await good.broadcast('hello'), /^\d+-\d+$/);

    const bad = new Channel({ redis: { url: `redis://alice:wrong-pass@127.0.0.1:${redis.port}/0`, stream: 'acl' } });
    t.after(() => bad.close());
    const failures = [];
    await bad.ready.catch((err) => failures.push(err));
    await bad.broadcast('x').catch((err) => failures.push(err));
    assert.equal(failures.length, 2);
    for (const err of failures) {
      assert.ok(err.message.includes(`redis://127.0.0.1:${redis.port}/0`), err.message);
      assert.ok(!/wrong-pass|s3cret|alice:/.test(err.message), err.message);
    }
    assert.equal(failures[1].code, 'ERR_SSE_REDIS_NOT_APPENDED');
  });

  test('Redis down at start: ready and broadcasts reject at once, a resume ends its stream, then the channel recovers by itself', async (t) => {
    const port = await freePort();
    const channel = new Channel({ redis: { url: `redis://127.0.0.1:${port}`, stream: 'later' } });
    t.after(() => channel.close());
    const seen = [];
    const onWarning = (w) => seen.push(`${w.code}: ${w.message}`);
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    let started = performance.now();
    await assert.rejects(
      channel.ready,
      (err) =>
        err.code === 'ERR_SSE_REDIS_UNAVAILABLE' &&
        /^Cannot connect to Redis at redis:\/\/127\.0\.0\.1:\d+/.test(err.message),
    );
    started = performance.now();
    await assert.rejects(channel.broadcast('x'), { code: 'ERR_SSE_REDIS_NOT_APPENDED' });
    assert.ok(performance.now() - started < 1000, `rejected after ${Math.round(performance.now() - started)} ms`);
    await assert.rejects(channel.broadcast('x', { id: '1' }), TypeError);

    const app = await serveChannel(t, channel);
    const resuming = app.open({ 'Last-Event-ID': '1-1' });
    await until(() => app.endpoints[0]?.result !== undefined, 5000, 'subscribe() to settle');
    assert.deepEqual(app.endpoints[0].result, { replayed: 0, complete: false });
    assert.equal(app.endpoints[0].endpoint.closed, true, 'its stream was ended; the client comes back later');
    await until(() => resuming.ended, 5000, 'the client to see the end');
    const fresh = app.open();
    await until(() => app.endpoints[1]?.result !== undefined, 10_000, 'the live subscription');
    // Placed, but nothing says it missed nothing; the link says it is down,
    // and a warning says that a client waits on it, once.
    assert.deepEqual(app.endpoints[1].result, { replayed: 0, complete: false });
    const down = diagnostics().redis.find((link) => link.server === `redis://127.0.0.1:${port}`);
    assert.equal(down.connected, false);
    assert.ok(down.downSince <= Date.now(), `down since ${down.downSince}`);
    assert.match(down.reason, /^Cannot connect to Redis at redis:\/\/127\.0\.0\.1:\d+/);
    assert.equal(down.channels, 1);
    assert.equal(down.clients, 1);
    const unreachable = () => seen.filter((w) => w.startsWith('ERR_SSE_REDIS_UNAVAILABLE'));
    await until(() => unreachable().length === 1, 5000, 'the warning');
    assert.match(
      unreachable()[0],
      /Cannot connect to Redis at .*: 1 client waits on 1 stream of Redis at redis:\/\/127\.0\.0\.1:\d+/,
    );
    const second = app.open();
    await until(() => app.endpoints[2]?.result !== undefined, 10_000, 'a second live subscription');
    assert.equal(app.endpoints[2].result.complete, false);

    const redis = await Redis.start({ port });
    t.after(() => redis.stop());
    let id;
    await until(
      async () => {
        id = await channel.broadcast('back').catch(() => undefined);
        return id !== undefined;
      },
      10_000,
      'a broadcast to get through',
    );
    // The follower reconnects within its longest backoff (2 s) plus a
    // connect; a failure says what the channel and the client saw.
    await until(() => fresh.count >= 1, 10_000, 'the live event').catch((err) => {
      err.message += `; size ${channel.size}, diagnostics ${JSON.stringify(diagnostics())}; client: status ${fresh.status}, ended ${fresh.ended}, ${fresh.bytes} bytes, named ${JSON.stringify(fresh.named)}; subscribe: ${JSON.stringify(app.endpoints[1].result)}; warnings: ${JSON.stringify(seen)}`;
      throw err;
    });
    assert.deepEqual(fresh.events, [{ id, data: 'back' }]);
    await until(() => second.count >= 1, 10_000, 'the live event, to the second client');
    assert.deepEqual(second.events, [{ id, data: 'back' }]);
    const up = diagnostics().redis.find((link) => link.server === `redis://127.0.0.1:${port}`);
    assert.deepEqual([up.connected, up.downSince, up.reason, up.clients], [true, null, null, 2], JSON.stringify(up));
    assert.equal(unreachable().length, 1, 'one warning for the outage');
  });

  test('a broadcast Redis refuses was not appended; a lost reply is resolved by looking for the entry, unknown only while Redis stays away', async (t) => {
    const redis = await Redis.start();
    t.after(() => redis.stop());
    await redis.commands([['SET', 'not-a-stream', 'x']]);
    const wrong = new Channel({ redis: { url: redis.url, stream: 'not-a-stream' } });
    t.after(() => wrong.close());
    // The key cannot be read as a stream, which no retry heals: ready says so.
    await assert.rejects(
      wrong.ready,
      (err) =>
        err.code === 'ERR_SSE_REDIS_UNREADABLE' && /XREVRANGE/.test(err.message) && /WRONGTYPE/.test(err.message),
    );
    await assert.rejects(
      wrong.broadcast('x'),
      (err) => err.code === 'ERR_SSE_REDIS_NOT_APPENDED' && /WRONGTYPE/.test(err.message),
    );

    const channel = new Channel({ redis: { url: redis.url, stream: 'paused' } });
    t.after(() => channel.close());
    await channel.ready;
    assert.match(await channel.broadcast('first'), /^\d+-\d+$/);
    // Redis stalls for longer than the publisher waits for a reply, then
    // runs what it was sent: the reply is lost, and the publisher finds out
    // what became of the broadcast once Redis answers again (it kills the
    // old connection, then looks for the broadcast's producer tag).
    const sleeping = redis.commands([['DEBUG', 'SLEEP', '8']]);
    // Asleep once a PING on another connection, sent after the sleep, goes
    // unanswered for a second (an awake Redis answers in well under that,
    // even on a loaded machine); about 7 s of sleep are then left, more than
    // the publisher's reply timeout (5 s) that the broadcast waits out.
    const answers = () => Promise.race([redis.commands([['PING']]).then(() => true), tick(1000).then(() => false)]);
    await until(async () => !(await answers()), 10_000, 'Redis to be asleep');
    const outcome = await channel.broadcast('held').catch((err) => err);
    await sleeping;
    const after = await channel.broadcast('after');
    assert.match(after, /^\d+-\d+$/);
    const [entries] = await redis.commands([['XRANGE', 'paused', '-', '+']]);
    const held = entries.find(([, fields]) => String(fields[1]) === 'held');
    // Known either way, and what the stream says.
    if (held === undefined) {
      assert.equal(outcome.code, 'ERR_SSE_REDIS_NOT_APPENDED', String(outcome));
      assert.match(outcome.message, /not in the stream/);
    } else {
      assert.equal(outcome, String(held[0]), `the broadcast's id, not ${outcome}`);
    }
    // In call order, once each.
    assert.deepEqual(
      entries.map(([, fields]) => String(fields[1])),
      held === undefined ? ['first', 'after'] : ['first', 'held', 'after'],
    );

    // A Redis that does not answer again within the stated time leaves the
    // outcome unknown, and says so: stopped (SIGSTOP), it takes the
    // pipeline into its socket and answers nothing.
    signal(redis.process, 'SIGSTOP');
    const started = performance.now();
    const unknown = await channel.broadcast('lost').catch((err) => err);
    signal(redis.process, 'SIGCONT');
    assert.equal(unknown.code, 'ERR_SSE_REDIS_OUTCOME_UNKNOWN', String(unknown));
    assert.match(unknown.message, /may or may not have been appended/);
    assert.match(unknown.message, /could not be learnt within 10 s/);
    assert.ok(
      performance.now() - started >= 10_000,
      `it waited for Redis (${Math.round(performance.now() - started)} ms)`,
    );
  });

  test('lifecycle: a Redis-backed channel says when its last endpoint has left, a resumed one included', async (t) => {
    const redis = await Redis.start({ durable: false });
    t.after(() => redis.stop());
    const channel = new Channel({ redis: { url: redis.url, stream: 'rooms' } });
    t.after(() => channel.close());
    await channel.ready;
    let empties = 0;
    channel.addEventListener('empty', () => empties++);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await channel.broadcast(`m${i}`));
    const app = await serveChannel(t, channel);
    // One client resumes after the first entry, one joins live.
    const resumed = app.open({ 'Last-Event-ID': ids[0] });
    const live = app.open();
    await until(() => resumed.count === 2 && channel.size === 2, 10_000, 'the resume and the live join');
    assert.deepEqual(
      resumed.events.map((e) => e.data),
      ['m1', 'm2'],
    );
    live.close();
    await until(() => channel.size === 1, 10_000, 'one left');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(empties, 0, 'the resumed client is still there');
    resumed.close();
    await until(() => empties === 1, 10_000, 'the empty event');
    assert.equal(channel.size, 0);
  });

  test('lifecycle: close() before ready, broadcast and subscribe after close()', async (t) => {
    const redis = await Redis.start();
    t.after(() => redis.stop());
    const early = new Channel({ redis: { url: redis.url, stream: 'life' } });
    early.close();
    await assert.rejects(early.ready, { code: 'ERR_SSE_CHANNEL_CLOSED' });
    await assert.rejects(early.broadcast('x'), { code: 'ERR_SSE_REDIS_NOT_APPENDED' });

    const channel = new Channel({ redis: { url: redis.url, stream: 'life' } });
    await channel.ready;
    const app = await serveChannel(t, channel);
    const live = app.open();
    await until(() => app.endpoints[0]?.result !== undefined, 5000, 'the subscription');
    channel.close();
    await assert.rejects(channel.broadcast('x'), { code: 'ERR_SSE_REDIS_NOT_APPENDED' });
    const late = app.open({ 'Last-Event-ID': '1-1' });
    await until(() => app.endpoints[1]?.result !== undefined, 5000, 'subscribe() to settle');
    assert.deepEqual(app.endpoints[1].result, { replayed: 0, complete: false });
    assert.equal(app.endpoints[1].endpoint.closed, true, 'no silent stream');
    await until(() => late.ended, 5000, 'the client to see the end');
    assert.equal(live.ended, false, 'subscribers stay open');
    const [length] = await redis.commands([['XLEN', 'life']]);
    assert.equal(length, 0);
  });
}

redisSuite(registerTests);
