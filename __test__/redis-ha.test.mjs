// Redis high availability: a master, a replica and three sentinels, two
// server processes that find the master through the sentinels, and the
// master killed while broadcasts go on; a cluster of three masters, one of
// them killed, and a slot moved from one master to another under the
// channels. Every client counts what it got.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  SentinelGroup,
  RedisCluster,
  freePort,
  redisSuite,
  redisCommands,
  startApp,
  startRooms,
  signal,
} from './redis-server.mjs';
import { until, tick, tallyEvents, compareStreamIds, serve } from './helpers.mjs';
import { Channel, EventEndpoint } from 'native-sse';

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
          /"options\.redis" argument cannot be used: a Sentinel URL is redis\+sentinel:\/\//.test(err.message) &&
          !err.message.includes('s3cret'),
        url,
      );
    }
  });

  test('Cluster: channels on all three masters deliver from two processes; one master killed stops only its channels; a slot moved under a channel is followed', async (t) => {
    const cluster = await RedisCluster.start();
    t.after(() => cluster.stop());
    const rooms = 30;
    const apps = [await startRooms(t, cluster, rooms, 'room'), await startRooms(t, cluster, rooms, 'room')];
    const all = Array.from({ length: rooms }, (_, i) => i);
    // Which master holds each room's stream.
    const nodeOf = new Map();
    for (const room of all) nodeOf.set(room, await cluster.nodeOf(`room:${room}`));
    assert.equal(new Set(nodeOf.values()).size, 3, 'rooms on all three masters');
    const clients = apps.map((app) =>
      all.map((room) => tallyEvents(`${app.url}/events?rooms=${room}`, { keep: Infinity })),
    );
    t.after(() => {
      for (const list of clients) for (const c of list) c.close();
    });
    await until(
      () => clients.every((list) => list.every((c) => c.named.some((e) => e.type === 'subscribed'))),
      20_000,
      'subscriptions',
    );
    /** What each room was sent, in stream order, by the outcomes. */
    const sent = new Map(all.map((room) => [room, []]));
    let tag = 0;
    /** A broadcast to each of `list` from each process, at once. */
    const burst = async (list) => {
      const sends = apps.map(() => list.map((room) => [room, `${room}/${tag++}`]));
      const outcomes = await Promise.all(apps.map((app, i) => app.burst(sends[i])));
      const results = [];
      for (const [i, list2] of outcomes.entries()) {
        for (const [j, outcome] of list2.entries()) {
          const [room, data] = sends[i][j];
          if (typeof outcome.id === 'string') sent.get(room).push({ id: outcome.id, data });
          results.push({ room, data, ...outcome });
        }
      }
      return results;
    };
    const expectDelivered = async (list, what) => {
      for (const room of list) sent.get(room).sort((x, y) => compareStreamIds(x.id, y.id));
      for (const [p, perRoom] of clients.entries()) {
        await until(
          () => list.every((room) => perRoom[room].count >= sent.get(room).length),
          30_000,
          `${what} on process ${p}`,
        );
        for (const room of list) {
          assert.deepEqual(perRoom[room].events, sent.get(room), `room ${room} on process ${p}: ${what}`);
        }
      }
    };
    const first = await burst(all);
    assert.deepEqual(
      first.filter((o) => !o.id),
      [],
      'every broadcast appended',
    );
    await expectDelivered(all, 'the first broadcasts');

    // One master killed: its channels' broadcasts are refused; the others'
    // go on, delivered on both processes.
    const dead = nodeOf.get(0);
    await dead.kill();
    const onDead = all.filter((room) => nodeOf.get(room) === dead);
    const alive = all.filter((room) => nodeOf.get(room) !== dead);
    const started = performance.now();
    const during = await burst(all);
    const tookMs = performance.now() - started;
    for (const o of during) {
      if (onDead.includes(o.room)) {
        assert.ok(
          o.code === 'ERR_SSE_REDIS_NOT_APPENDED' || o.code === 'ERR_SSE_REDIS_OUTCOME_UNKNOWN',
          JSON.stringify(o),
        );
      } else {
        assert.equal(typeof o.id, 'string', JSON.stringify(o));
      }
    }
    await expectDelivered(alive, 'broadcasts while a master is down');
    // Restarted, it serves its channels again.
    await dead.run();
    await cluster.untilOk(cluster.nodes);
    await until(
      async () => (await burst(onDead.slice(0, 1))).every((o) => typeof o.id === 'string'),
      30_000,
      'the restarted master to take broadcasts',
    );
    const back = await burst(all);
    assert.deepEqual(
      back.filter((o) => !o.id),
      [],
      'every broadcast appended after the restart',
    );
    await expectDelivered(all, 'broadcasts after the restart');

    // A slot moved: room 1's slot goes from its master to another, with
    // its stream (MIGRATE), as a resharding does.
    const room = 1;
    const key = `room:${room}`;
    const from = nodeOf.get(room);
    const to = cluster.nodes.find((n) => n !== from);
    const [slot] = await from.commands([['CLUSTER', 'KEYSLOT', key]]);
    const [[fromId], [toId]] = await Promise.all([
      from.commands([['CLUSTER', 'MYID']]),
      to.commands([['CLUSTER', 'MYID']]),
    ]);
    await to.commands([['CLUSTER', 'SETSLOT', slot, 'IMPORTING', String(fromId)]]);
    await from.commands([['CLUSTER', 'SETSLOT', slot, 'MIGRATING', String(toId)]]);
    const [keys] = await from.commands([['CLUSTER', 'GETKEYSINSLOT', slot, 1000]]);
    const [migrated] = await from.commands([
      ['MIGRATE', '127.0.0.1', to.port, '', 0, 5000, 'KEYS', ...keys.map(String)],
    ]);
    assert.equal(String(migrated), 'OK');
    for (const node of cluster.nodes) await node.commands([['CLUSTER', 'SETSLOT', slot, 'NODE', String(toId)]]);
    // A notice of the stream (a cluster's PUBLISH reaches every node) makes
    // the old master's follower read it there, before anything else says
    // the slot moved: that read is sent elsewhere (MOVED), which is no
    // fault to warn of but a sign to read the map again and follow there.
    const movedAnswers = async () => {
      const [info] = await from.commands([['INFO', 'errorstats']]);
      return Number(/errorstat_MOVED:count=(\d+)/.exec(String(info))?.[1] ?? 0);
    };
    const movedBefore = await movedAnswers();
    await from.commands([['PUBLISH', key, '9999999999999-0']]);
    await until(async () => (await movedAnswers()) > movedBefore, 10_000, 'the old master to answer a read with MOVED');
    // The broadcasts that meet MOVED were not appended there: the link
    // reads the map again and sends them to the new master, in call order
    // with those behind them; all reach both processes' clients.
    const moved = [];
    for (let i = 0; i < 3; i++) moved.push(...(await burst([room, room, room])));
    assert.deepEqual(
      moved.filter((o) => !o.id),
      [],
      'broadcasts to the moved slot appended',
    );
    assert.equal(String((await to.commands([['TYPE', key]]))[0]), 'stream', 'the stream is on the new master');
    await burst(all);
    await expectDelivered(all, 'broadcasts after the slot moved');
    for (const app of apps) {
      const stats = await app.stats();
      // A link per master, each of a publisher, a follower and two pages.
      assert.ok(stats.redisConnections <= 12, `${stats.redisConnections} Redis connections`);
      // The killed master came back empty (no persistence here): its
      // streams went back, which is said; nothing else is.
      for (const w of stats.warnings) {
        assert.equal(w.code, 'ERR_SSE_REDIS_REWOUND', JSON.stringify(w));
        assert.ok(
          onDead.some((r) => w.message.includes(`"room:${r}"`)),
          JSON.stringify(w),
        );
      }
    }
    t.diagnostic(
      `cluster: ${onDead.length} of ${rooms} rooms on the killed master; a burst to all rooms while it was down took ${tookMs} ms; ` +
        `${moved.length} broadcasts to the moved slot appended on the new master`,
    );
  });

  test('Cluster unreachable at start: ready rejects, broadcasts are refused, and once the cluster is up the channel appends and delivers by itself', async (t) => {
    const ports = [await freePort(), await freePort(), await freePort()];
    const url = `redis+cluster://${ports.map((port) => `127.0.0.1:${port}`).join(',')}`;
    const channel = new Channel({ redis: { url, stream: 'late' } });
    t.after(() => channel.close());
    await assert.rejects(channel.ready, (err) => err.code === 'ERR_SSE_REDIS_UNAVAILABLE' && err.message.includes(url));
    await assert.rejects(channel.broadcast('early'), (err) => err.code === 'ERR_SSE_REDIS_NOT_APPENDED');
    // A client subscribed while the cluster is down.
    const server = await serve((req, res) => {
      const endpoint = new EventEndpoint(req, res);
      channel.subscribe(endpoint).then(() => endpoint.sendEvent('subscribed', '').catch(() => {}));
    });
    t.after(() => server.close());
    const client = tallyEvents(server.url, { keep: Infinity });
    t.after(() => client.close());
    await until(() => client.named.length > 0, 20_000, 'the subscription');
    const cluster = await RedisCluster.start({ ports });
    t.after(() => cluster.stop());
    let id = null;
    await until(
      async () => {
        id = await channel.broadcast('up').catch(() => null);
        return id !== null;
      },
      30_000,
      'a broadcast to be appended',
    );
    await until(() => client.events.some((e) => e.id === id), 30_000, 'the client to get it');
    assert.deepEqual(
      client.events.map((e) => e.data).filter((d) => d !== 'up'),
      [],
    );
  });

  test('Cluster with replicas: a master killed, its replica promoted by the cluster; its channels resume by themselves, clients get the final stream once, in order', async (t) => {
    const cluster = await RedisCluster.start({ replicas: 1 });
    t.after(() => cluster.stop());
    const apps = [await startRooms(t, cluster, 6, 'ha'), await startRooms(t, cluster, 6, 'ha')];
    const room = 0;
    const dead = await cluster.nodeOf(`ha:${room}`);
    const clients = apps.map((app) => tallyEvents(`${app.url}/events?rooms=${room}`, { keep: Infinity }));
    t.after(() => {
      for (const c of clients) c.close();
    });
    await until(() => clients.every((c) => c.named.some((e) => e.type === 'subscribed')), 20_000, 'subscriptions');
    const outcomes = [];
    let n = 0;
    const send = async () => {
      const texts = apps.map((_, i) => `${i}/${n++}`);
      const list = await Promise.all(apps.map((app, i) => app.burst([[room, texts[i]]])));
      for (const [i, [outcome]] of list.entries()) outcomes.push({ at: performance.now(), data: texts[i], ...outcome });
    };
    await send();
    // The replica must have what the master had before it is killed.
    await until(
      async () => {
        const [info] = await dead.commands([['INFO', 'replication']]);
        const text = String(info);
        const offset = /master_repl_offset:(\d+)/.exec(text)?.[1];
        return offset !== undefined && new RegExp(`slave0:.*offset=${offset},`).test(text);
      },
      20_000,
      'the replica to catch up',
    );
    const killedAt = performance.now();
    await dead.kill();
    let promotedAt = 0;
    let going = true;
    const loop = (async () => {
      while (going) {
        await send();
        await tick(20);
      }
    })();
    await until(
      async () => {
        const now = await cluster.nodeOf(`ha:${room}`);
        if (now !== null && now !== dead && promotedAt === 0) promotedAt = performance.now();
        return promotedAt > 0;
      },
      60_000,
      'the cluster to promote the replica',
    );
    await until(
      () => outcomes.some((o) => o.id && o.at > promotedAt),
      30_000,
      'a broadcast appended after the promotion',
    );
    const appendedAt = outcomes.find((o) => o.id && o.at > promotedAt).at;
    // A few more go to the promoted master before the loop stops.
    await until(
      () => outcomes.filter((o) => o.at > appendedAt).length >= 10,
      30_000,
      'broadcasts after the first append',
    );
    going = false;
    await loop;
    await send();
    const promoted = await cluster.nodeOf(`ha:${room}`);
    const [entries] = await promoted.commands([['XRANGE', `ha:${room}`, '-', '+']]);
    const stream = entries.map(([id, fields]) => ({
      id: String(id),
      data: String(fields[fields.map(String).indexOf('d') + 1]),
    }));
    // Not appended means not in the stream; appended means that entry.
    for (const o of outcomes) {
      const entry = stream.find((e) => e.data === o.data);
      if (o.id) {
        if (entry !== undefined) assert.equal(entry.id, o.id, o.data);
      } else {
        assert.equal(o.code, 'ERR_SSE_REDIS_NOT_APPENDED', JSON.stringify(o));
        assert.equal(entry, undefined, `${o.data} was reported not appended, and is in the stream`);
      }
    }
    const lost = outcomes.filter((o) => o.id && !stream.some((e) => e.id === o.id));
    for (const [i, client] of clients.entries()) {
      await until(
        () => client.events.some((e) => e.id === stream.at(-1).id),
        30_000,
        `client ${i} to reach the stream's end`,
      );
      const ids = client.events.map((e) => e.id);
      assert.equal(new Set(ids).size, ids.length, `client ${i}: an entry twice`);
      assert.deepEqual(
        client.events.filter((e) => stream.some((s) => s.id === e.id)),
        stream,
        `client ${i}: the stream's entries, once, in order`,
      );
    }
    t.diagnostic(
      `cluster failover: master killed → replica promoted ${((promotedAt - killedAt) / 1000).toFixed(1)} s; ` +
        `promotion → first broadcast appended ${Math.round(appendedAt - promotedAt)} ms; ${outcomes.length} broadcasts, ` +
        `${outcomes.filter((o) => !o.id).length} not appended, ${lost.length} appended but lost`,
    );
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
      // sent) is said; nothing else is.
      for (const w of warnings) assert.equal(w.code, 'ERR_SSE_REDIS_REWOUND', JSON.stringify(w));
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
    await until(() => outcomes.length >= 20, 20_000, 'broadcasts before the pause');
    // Paused, not dead: the sentinels promote the replica, and the old
    // master, resumed, still holds (and may run) what it was sent.
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
    // The old master runs what it held, then is demoted by the sentinels.
    await until(
      async () => {
        const [role] = await redisCommands(group.master.port, [['ROLE']]).catch(() => [null]);
        return Array.isArray(role) && String(role[0]) === 'slave';
      },
      60_000,
      'the old master to be demoted',
    );
    const resumedAt = outcomes.length;
    await until(() => outcomes.length >= resumedAt + 20, 30_000, 'broadcasts after the demotion');
    going = false;
    await Promise.all(loops);
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
