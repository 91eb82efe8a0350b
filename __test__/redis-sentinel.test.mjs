// Redis high availability with Sentinel: a master, a replica and three
// sentinels, two server processes that find the master through the
// sentinels; the master killed, or paused past the failover (a split
// brain), while broadcasts go on. Every client counts what it got.
import test from 'node:test';
import assert from 'node:assert/strict';
import { SentinelGroup, redisSuite, redisCommands, startApp, signal } from './redis-server.mjs';
import { until, tick, tallyEvents, compareStreamIds } from './helpers.mjs';
import { Channel } from 'native-sse';

const STREAM = 'ha';

/** A Sentinel group, two server processes on it and a client of each,
 * subscribed; all stopped after the test. */
async function sentinelWithTwoApps(t) {
  const group = await SentinelGroup.start();
  t.after(() => group.stop());
  const apps = [await startApp(t, group, STREAM), await startApp(t, group, STREAM)];
  const clients = apps.map((app) => tallyEvents(`${app.url}/events`, { keep: Infinity }));
  t.after(() => {
    for (const client of clients) client.close();
  });
  await until(() => clients.every((c) => c.named.some((e) => e.type === 'subscribed')), 20_000, 'subscriptions');
  return { group, apps, clients };
}

function registerTests() {
  test('a Sentinel URL that cannot be used is refused up front, naming its form and no password', () => {
    for (const url of [
      'redis+sentinel://127.0.0.1:26379',
      'redis+sentinel://ada:s3cret@127.0.0.1:notaport/mymaster',
      'redis+sentinel://127.0.0.1:26379/mymaster/notadb',
    ]) {
      assert.throws(
        () => new Channel({ redis: { url, stream: 's' } }),
        (err) =>
          err instanceof TypeError &&
          /"options\.redis\.url" argument cannot be used: a Sentinel URL is redis\+sentinel:\/\//.test(err.message) &&
          !err.message.includes('s3cret'),
        url,
      );
    }
  });

  test('Sentinel: the master killed under broadcasts; after the promotion broadcasts and deliveries resume, every outcome is known and true, clients get each entry of the stream once, in order', async (t) => {
    const { group, apps, clients } = await sentinelWithTwoApps(t);
    const first = await apps[0].burst(100, 'before');
    assert.ok(
      first.every((o) => typeof o.id === 'string'),
      JSON.stringify(first.find((o) => !o.id)),
    );
    await until(() => clients.every((c) => c.count === 100), 20_000, 'the first 100 on both processes');

    // Broadcasts go on, one at a time from each process, while the master
    // dies and the replica is promoted.
    const outcomes = [];
    let going = true;
    const loops = apps.map(async (app, i) => {
      for (let n = 0; going; n++) {
        const text = `during-${i}-${n}`;
        const started = performance.now();
        const outcome = await app.publish(text);
        outcomes.push({ text, started, ended: performance.now(), ...outcome });
        await tick(10);
      }
    });
    // Some broadcasts go to the master before it dies.
    await until(() => outcomes.length >= 20, 20_000, 'broadcasts before the kill');
    const killedAt = performance.now();
    await group.master.kill();
    await until(
      async () => (await group.masterPort()) === group.replica.port,
      60_000,
      'the sentinels to promote the replica',
    );
    const promotedAt = performance.now();
    // Broadcasts resume: one appended that was started after the promotion.
    await until(
      () => outcomes.some((o) => o.ok && o.started >= promotedAt),
      30_000,
      'a broadcast appended after the promotion',
    );
    const appendedAt = Math.min(...outcomes.filter((o) => o.ok && o.started >= promotedAt).map((o) => o.ended));
    // Deliveries resume: both clients get a broadcast started after the promotion.
    const firstAfter = outcomes.find((o) => o.ok && o.started >= promotedAt);
    await until(
      () => clients.every((c) => c.events.some((e) => e.data === firstAfter.text)),
      30_000,
      'deliveries after the promotion',
    );
    const deliveredAt = performance.now();
    await until(
      () => outcomes.filter((o) => o.started > deliveredAt).length >= 10,
      30_000,
      'broadcasts after the delivery',
    );
    going = false;
    await Promise.all(loops);
    const last = await apps[1].burst(100, 'after');
    assert.ok(last.every((o) => typeof o.id === 'string'));

    // The truth is the new master's stream.
    const [entries] = await redisCommands(group.replica.port, [['XRANGE', STREAM, '-', '+']]);
    const stream = entries.map(([id, fields]) => {
      const data = String(fields[fields.map(String).indexOf('d') + 1]);
      return { id: String(id), data };
    });
    const inStream = new Map(stream.map((e) => [e.data, e.id]));
    const unknown = outcomes.filter((o) => o.body.startsWith('ERR_SSE_REDIS_OUTCOME_UNKNOWN'));
    assert.deepEqual(unknown, [], 'no outcome left unknown once the new master answers');
    // Not appended means not in the stream; appended with an id means that
    // entry, unless the failover lost it (replication is asynchronous).
    const lost = [];
    for (const o of outcomes) {
      if (!o.ok) {
        assert.match(o.body, /^ERR_SSE_REDIS_NOT_APPENDED/, o.body);
        assert.ok(!inStream.has(o.text), `${o.text} was reported not appended, and is in the stream`);
      } else if (inStream.has(o.text)) {
        assert.equal(inStream.get(o.text), o.body, o.text);
      } else {
        lost.push(o);
      }
    }
    for (const list of [first, last]) for (const o of list) if (!stream.some((e) => e.id === o.id)) lost.push(o);
    // Each client: every entry of the stream exactly once, in stream order;
    // beside them, only entries the failover lost (delivered before the
    // master died, never replicated), each once.
    const lastId = stream.at(-1).id;
    for (const [i, client] of clients.entries()) {
      await until(() => client.events.some((e) => e.id === lastId), 30_000, `client ${i} to reach the stream's end`);
      const ids = client.events.map((e) => e.id);
      assert.equal(new Set(ids).size, ids.length, `client ${i}: an entry twice`);
      const ofStream = client.events.filter((e) => inStream.get(e.data) === e.id);
      assert.deepEqual(
        ofStream.map((e) => e.id),
        stream.map((e) => e.id),
        `client ${i}: the stream's entries`,
      );
      for (let k = 1; k < ofStream.length; k++) assert.ok(compareStreamIds(ofStream[k - 1].id, ofStream[k].id) < 0);
    }
    for (const app of apps) {
      const { warnings } = await app.stats();
      // A stream that went back (the new master lacks what the old one had
      // sent) is said, as the client waiting while there was no master;
      // nothing else is.
      for (const w of warnings) {
        assert.ok(['ERR_SSE_REDIS_REWOUND', 'ERR_SSE_REDIS_UNAVAILABLE'].includes(w.code), JSON.stringify(w));
      }
    }
    const refused = outcomes.filter((o) => !o.ok).length;
    t.diagnostic(
      `failover: master killed → replica promoted ${((promotedAt - killedAt) / 1000).toFixed(1)} s; ` +
        `promotion → first broadcast appended ${Math.round(appendedAt - promotedAt)} ms, → delivered on both processes ${Math.round(deliveredAt - promotedAt)} ms; ` +
        `${outcomes.length} broadcasts during it: ${refused} not appended, ${lost.length} appended but lost by the failover`,
    );
  });
}

redisSuite(registerTests);

function registerSplitBrain() {
  test('Sentinel split brain: the master paused past the failover and resumed under broadcasts from two processes: no broadcast reported not appended is ever delivered, and each live client gets the final stream once, in order, or is told', async (t) => {
    // Each phase is printed as it begins, so that a run the file's time
    // limit ends says where it was.
    const began = performance.now();
    const phase = (what) => console.log(`split brain, ${Math.round(performance.now() - began)} ms: ${what}`);
    phase('starting the group and two processes');
    const { group, apps, clients } = await sentinelWithTwoApps(t);
    const outcomes = [];
    let going = true;
    const loops = apps.map(async (app, i) => {
      for (let n = 0; going; n++) {
        const text = `split-${i}-${n}`;
        outcomes.push({ text, ...(await app.publish(text)) });
        await tick(10);
      }
    });
    t.after(() => {
      going = false;
    });
    phase('broadcasts before the pause');
    await until(() => outcomes.length >= 20, 20_000, 'broadcasts before the pause');
    // Paused, not dead: the sentinels promote the replica, and the old
    // master, resumed, still holds (and may run) what it was sent.
    phase('master paused; waiting for the promotion');
    signal(group.master.process, 'SIGSTOP');
    try {
      await until(
        async () => (await group.masterPort()) === group.replica.port,
        60_000,
        'the sentinels to promote the replica',
      );
      const promotedAt = outcomes.length;
      await until(
        () => outcomes.slice(promotedAt).filter((o) => o.ok).length >= 10,
        30_000,
        'broadcasts appended on the new master',
      );
    } finally {
      signal(group.master.process, 'SIGCONT');
    }
    phase('master resumed; waiting for its demotion');
    // The old master runs what it held, then is demoted by the sentinels.
    await until(
      async () => {
        const [role] = await redisCommands(group.master.port, [['ROLE']]).catch(() => [null]);
        return Array.isArray(role) && String(role[0]) === 'slave';
      },
      60_000,
      'the old master to be demoted',
    );
    phase('demoted; broadcasts after it');
    const resumedAt = outcomes.length;
    await until(() => outcomes.length >= resumedAt + 20, 30_000, 'broadcasts after the demotion');
    going = false;
    await Promise.all(loops);
    phase('the last burst');
    const last = await apps[0].burst(20, 'split-last');
    assert.ok(last.every((o) => typeof o.id === 'string'));
    const lastId = last.at(-1).id;
    for (const [i, client] of clients.entries()) {
      await until(() => client.events.some((e) => e.id === lastId), 30_000, `client ${i} to reach the last burst`);
    }
    const notAppended = outcomes.filter((o) => !o.ok);
    const byCode = {};
    for (const o of notAppended) {
      const code = o.body.split(':')[0];
      byCode[code] = (byCode[code] ?? 0) + 1;
    }
    const [entries] = await redisCommands(group.replica.port, [['XRANGE', STREAM, '-', '+']]);
    const finalIds = entries.map(([id]) => String(id));
    const finalStream = new Set(finalIds);
    for (const [i, client] of clients.entries()) {
      const received = client.events.filter((e) => finalStream.has(e.id)).map((e) => e.id);
      const extra = client.events.length - received.length;
      const told = client.named.filter((e) => e.type === 'incomplete').length;
      const { diagnostics, warnings } = await apps[i].stats();
      t.diagnostic(
        `client ${i}: ${received.length} of the final stream's ${finalIds.length} entries received, ${extra} events of the old master's timeline; incomplete events: ${told}; stream rewinds reported: ${diagnostics.streamRewinds}`,
      );
      // What the process saw, for a failure to be read from the log.
      for (const w of warnings.filter((w) => w.code === 'ERR_SSE_REDIS_REWOUND'))
        t.diagnostic(`process ${i}: ${w.message}`);
      t.diagnostic(
        `client ${i}: old timeline ids ${client.events
          .filter((e) => !finalStream.has(e.id))
          .map((e) => e.id)
          .join(', ')}`,
      );
      // Every entry of the final stream once, in order, from the first one
      // the client was sent; or the client (and application) was told.
      if (told === 0) {
        const from = finalIds.indexOf(received[0]);
        assert.deepEqual(received, finalIds.slice(from), `client ${i}: the final stream, once, in order`);
      } else {
        assert.equal(new Set(received).size, received.length, `client ${i} got an entry twice`);
      }
    }
    t.diagnostic(`${outcomes.length} broadcasts during the split brain; refused: ${JSON.stringify(byCode)}`);
    // Not appended means absent: no client, in either process, ever got one.
    const refused = new Set(
      notAppended.filter((o) => o.body.startsWith('ERR_SSE_REDIS_NOT_APPENDED')).map((o) => o.text),
    );
    for (const [i, client] of clients.entries()) {
      const delivered = client.events.filter((e) => refused.has(e.data)).map((e) => e.data);
      assert.deepEqual(delivered, [], `client ${i} got broadcasts reported not appended`);
    }
  });
}
redisSuite(registerSplitBrain);
