// Any number of channels on one stream. Channel objects of one process that
// name the same Redis stream share the link's follow of it; one made,
// subscribed and closed while another delivers must cost that other nothing.
// Counted on the client side: the client connected throughout gets every
// entry of the stream exactly once, in order.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Redis, redisSuite } from './redis-server.mjs';
import { until, tallyEvents, serve } from './helpers.mjs';
import { EventEndpoint, Channel } from 'native-sse';

/** A server whose clients subscribe to `channelOf()` (called per request). */
async function server(t, channelOf) {
  const app = await serve((req, res) => {
    const endpoint = new EventEndpoint(req, res);
    channelOf(req).subscribe(endpoint);
  });
  t.after(() => app.close());
  return app;
}

/**
 * Runs `rounds` rounds in which `extra` more channels on the stream are
 * made (each with a client of its own), broadcast through and closed, while
 * a channel made first broadcasts throughout; returns the ids of every
 * entry appended, in stream order, and the client of the first channel.
 */
async function churn(t, redis, { rounds, extra, keepOne }) {
  const stream = `shared-${extra}-${process.pid}`;
  const options = { redis: { url: redis.url, stream } };
  const first = new Channel(options);
  t.after(() => first.close());
  await first.ready;
  // One more kept open throughout, beside those made and closed.
  const kept = keepOne ? new Channel(options) : null;
  if (kept !== null) t.after(() => kept.close());
  let current = first;
  const app = await server(t, (req) => (req.url.includes('first') ? first : current));
  const client = tallyEvents(`${app.url}first`, { keep: Infinity });
  t.after(() => client.close());
  if (kept !== null) {
    current = kept;
    const keptClient = tallyEvents(`${app.url}kept`);
    t.after(() => keptClient.close());
    await until(() => kept.size === 1, 10_000, 'the kept channel to have its client');
  }
  await until(() => first.size === 1, 10_000, 'the first client to subscribe');
  const appended = [];
  let n = 0;
  const broadcast = async (channel) => {
    const id = await channel.broadcast(`b-${n++}`);
    appended.push(id);
  };
  for (let round = 0; round < rounds; round++) {
    const others = [];
    for (let i = 0; i < extra; i++) {
      const other = new Channel(options);
      others.push(other);
      current = other;
      // A client of its own: its follow starts, the first one's goes on.
      const theirs = tallyEvents(`${app.url}other`);
      await until(() => other.size === 1, 10_000, 'the other channel to have its client');
      await broadcast(first);
      theirs.close();
    }
    // Broadcasts not awaited one by one, as an application sends them.
    const burst = [];
    for (let i = 0; i < 4; i++) burst.push(first.broadcast(`b-${n++}`));
    for (const other of others) {
      burst.push(other.broadcast(`b-${n++}`));
      other.close();
    }
    appended.push(...(await Promise.all(burst)));
  }
  appended.sort((a, b) => (a === b ? 0 : compare(a, b)));
  return { appended, client };
}

function compare(a, b) {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  return am === bm ? Number(as - bs) : am < bm ? -1 : 1;
}

async function expectEvery(client, appended) {
  await until(() => client.count >= appended.length, 30_000, `${appended.length} events`);
  assert.deepEqual(
    client.events.map((e) => e.id),
    appended,
    'every entry once, in order',
  );
  assert.equal(client.outOfOrder, 0);
}

function registerTests() {
  test('two channels on one stream, the second made and closed 60 times while broadcasts go on: the first client gets every entry once, in order', async (t) => {
    const redis = await Redis.start({ durable: false });
    t.after(() => redis.stop());
    const { appended, client } = await churn(t, redis, { rounds: 60, extra: 1, keepOne: false });
    assert.equal(appended.length, 60 * 6);
    await expectEvery(client, appended);
  });

  test('ten channels on one stream made and closed in a loop beside one kept open: the first client gets every entry once, in order', async (t) => {
    const redis = await Redis.start({ durable: false });
    t.after(() => redis.stop());
    const { appended, client } = await churn(t, redis, { rounds: 12, extra: 9, keepOne: true });
    assert.equal(appended.length, 12 * (9 + 4 + 9));
    await expectEvery(client, appended);
  });
}

redisSuite(registerTests);
