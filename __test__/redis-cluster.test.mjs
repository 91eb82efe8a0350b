// Redis Cluster: three masters, one of them killed, a slot moved from one
// master to another under the channels, a cluster unreachable at start, and
// a master's replica promoted. Every client counts what it got.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { RedisCluster, freeClusterPort, redisSuite, signal, startRooms } from './redis-server.mjs';
import { until, tick, tallyEvents, compareStreamIds, serve } from './helpers.mjs';
import { Channel, EventEndpoint } from 'native-sse';

/** Resolves once `master`'s replica has everything it has. */
function replicaCaughtUp(master) {
  return until(
    async () => {
      const [info] = await master.commands([['INFO', 'replication']]);
      const text = String(info);
      const offset = /master_repl_offset:(\d+)/.exec(text)?.[1];
      return offset !== undefined && new RegExp(`slave0:.*offset=${offset},`).test(text);
    },
    20_000,
    'the replica to catch up',
  );
}

/** The entries of `key` on `node`, as `{ id, data }`. */
async function finalStream(node, key) {
  const [entries] = await node.commands([['XRANGE', key, '-', '+']]);
  return entries.map(([id, fields]) => ({
    id: String(id),
    data: String(fields[fields.map(String).indexOf('d') + 1]),
  }));
}

/** Not appended means not in the stream; appended means that entry. */
function outcomesAgree(outcomes, stream) {
  for (const o of outcomes) {
    const entry = stream.find((e) => e.data === o.data);
    if (o.id) {
      if (entry !== undefined) assert.equal(entry.id, o.id, o.data);
    } else {
      assert.equal(o.code, 'ERR_SSE_REDIS_NOT_APPENDED', JSON.stringify(o));
      assert.equal(entry, undefined, `${o.data} was reported not appended, and is in the stream`);
    }
  }
}

function registerTests() {
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
      // streams went back, which is said, as its clients waiting on it
      // while it was away were; nothing else is.
      for (const w of stats.warnings) {
        if (w.code === 'ERR_SSE_REDIS_UNAVAILABLE') {
          assert.ok(w.message.includes(`Redis at redis://127.0.0.1:${dead.port}:`), JSON.stringify(w));
          assert.match(w.message, /clients wait on \d+ streams of Redis at redis\+cluster:\/\//, JSON.stringify(w));
          continue;
        }
        assert.equal(w.code, 'ERR_SSE_REDIS_REWOUND', JSON.stringify(w));
        assert.ok(
          onDead.some((r) => w.message.includes(`"room:${r}"`)),
          JSON.stringify(w),
        );
      }
      // The link is one deployment, connected again, with each master's.
      const [link, ...others] = stats.diagnostics.redis;
      assert.deepEqual(others, [], 'the masters are described within the cluster');
      assert.ok(link.server.startsWith('redis+cluster://'), link.server);
      assert.deepEqual(
        [link.connected, link.downSince, link.masters.length, link.masters.every((m) => m.connected)],
        [true, null, 3, true],
        JSON.stringify(link),
      );
      assert.equal(link.clients, rooms, JSON.stringify(link));
    }
    t.diagnostic(
      `cluster: ${onDead.length} of ${rooms} rooms on the killed master; a burst to all rooms while it was down took ${tookMs} ms; ` +
        `${moved.length} broadcasts to the moved slot appended on the new master`,
    );
  });

  test("Cluster (Redis 7): notices are sharded, so broadcasts put no PUBLISH on the cluster bus; another producer's classic PUBLISH is still heard", async (t) => {
    const cluster = await RedisCluster.start();
    t.after(() => cluster.stop());
    const rooms = 6;
    const [app] = [await startRooms(t, cluster, rooms, 'bus')];
    const all = Array.from({ length: rooms }, (_, i) => i);
    const clients = all.map((room) => tallyEvents(`${app.url}/events?rooms=${room}`, { keep: Infinity }));
    t.after(() => {
      for (const c of clients) c.close();
    });
    await until(() => clients.every((c) => c.named.some((e) => e.type === 'subscribed')), 20_000, 'subscriptions');
    const published = async () => {
      let total = 0;
      for (const node of cluster.nodes) {
        const [info] = await node.commands([['CLUSTER', 'INFO']]);
        total += Number(/cluster_stats_messages_publish_sent:(\d+)/.exec(String(info))?.[1] ?? 0);
      }
      return total;
    };
    const before = await published();
    const outcomes = await app.burst(
      all.flatMap((room) => Array.from({ length: 20 }, (_, i) => [room, `${room}/${i}`])),
    );
    assert.ok(
      outcomes.every((o) => typeof o.id === 'string'),
      JSON.stringify(outcomes.find((o) => !o.id)),
    );
    await until(() => clients.every((c) => c.count === 20), 20_000, 'every broadcast delivered');
    assert.equal((await published()) - before, 0, 'no classic PUBLISH crossed the bus');
    // Another producer, as the README says: XADD, then a classic PUBLISH.
    const key = 'bus:0';
    const master = await cluster.nodeOf(key);
    const [id] = await master.commands([['XADD', key, '*', 'd', 'by hand']]);
    await master.commands([['PUBLISH', key, String(id)]]);
    await until(() => clients[0].count === 21, 10_000, 'the entry written by hand');
    assert.deepEqual(clients[0].events.at(-1), { id: String(id), data: 'by hand' });
  });

  test('Cluster unreachable at start: ready rejects, broadcasts are refused, and once the cluster is up the channel appends and delivers by itself', async (t) => {
    const ports = [await freeClusterPort(), await freeClusterPort(), await freeClusterPort()];
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
    await replicaCaughtUp(dead);
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
    const stream = await finalStream(promoted, `ha:${room}`);
    outcomesAgree(outcomes, stream);
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

  test('Cluster with replicas: a master frozen under broadcasts from two processes, then killed; once the promoted replica serves the slot, no outcome is left unknown, and each is what the final stream says', async (t) => {
    const cluster = await RedisCluster.start({ replicas: 1 });
    t.after(() => cluster.stop());
    const apps = [await startRooms(t, cluster, 4, 'frozen'), await startRooms(t, cluster, 4, 'frozen')];
    const room = 0;
    const key = `frozen:${room}`;
    const dead = await cluster.nodeOf(key);
    const clients = apps.map((app) => tallyEvents(`${app.url}/events?rooms=${room}`, { keep: Infinity }));
    t.after(() => {
      for (const c of clients) c.close();
    });
    await until(() => clients.every((c) => c.named.some((e) => e.type === 'subscribed')), 20_000, 'subscriptions');
    const outcomes = [];
    let n = 0;
    // Each process sends bursts of five without awaiting each, so that
    // pipelines are in flight when the master freezes.
    const send = async () => {
      const sends = apps.map((_, i) => Array.from({ length: 5 }, () => [room, `${i}/${n++}`]));
      const list = await Promise.all(apps.map((app, i) => app.burst(sends[i])));
      for (const [i, results] of list.entries()) {
        for (const [j, outcome] of results.entries()) outcomes.push({ data: sends[i][j][1], ...outcome });
      }
    };
    await send();
    // A replica promotes itself only once it has synced with its master.
    await replicaCaughtUp(dead);
    let going = true;
    const loop = (async () => {
      while (going) {
        await send();
        await tick(10);
      }
    })();
    // Under way: bursts in flight when the master freezes.
    const started = outcomes.length;
    await until(() => outcomes.length >= started + 20, 20_000, 'bursts under way');
    // Frozen: what was sent to it waits for a reply that never comes.
    signal(dead.process, 'SIGSTOP');
    await tick(300);
    await dead.kill();
    const killedAt = performance.now();
    await until(
      async () => {
        const now = await cluster.nodeOf(key);
        return now !== null && now !== dead;
      },
      60_000,
      'the cluster to promote the replica',
    ).catch(async (err) => {
      const views = await Promise.all(
        cluster.nodes.map((node) => node.commands([['CLUSTER', 'NODES']]).then(String, (e) => e.message)),
      );
      err.message += `; ${outcomes.length} outcomes; nodes say: ${views.join(' | ')}`;
      throw err;
    });
    const promotedAt = performance.now();
    const promoted = await cluster.nodeOf(key);
    const appendedBefore = outcomes.filter((o) => o.id).length;
    await until(
      () => outcomes.filter((o) => o.id).length >= appendedBefore + 20,
      30_000,
      'broadcasts appended after the promotion',
    );
    going = false;
    await loop;
    // Every outcome is in: the loop awaited each burst.
    const unknown = outcomes.filter((o) => o.code === 'ERR_SSE_REDIS_OUTCOME_UNKNOWN');
    assert.deepEqual(unknown, [], 'no outcome unknown once the promoted replica serves the slot');
    const stream = await finalStream(promoted, key);
    outcomesAgree(outcomes, stream);
    for (const [i, client] of clients.entries()) {
      await until(
        () => client.events.some((e) => e.id === stream.at(-1).id),
        30_000,
        `client ${i} to reach the stream's end`,
      );
      const ids = client.events.map((e) => e.id);
      assert.equal(new Set(ids).size, ids.length, `client ${i}: an entry twice`);
    }
    t.diagnostic(
      `frozen master: killed → promoted ${((promotedAt - killedAt) / 1000).toFixed(1)} s; ${outcomes.length} broadcasts, ${outcomes.filter((o) => !o.id).length} not appended, ` +
        `${outcomes.filter((o) => o.id && !stream.some((e) => e.id === o.id)).length} appended but lost with the master`,
    );
  });

  test('Cluster: 100,000 channels, each on a stream name never used before, made, used and closed: the heap after a full collection stays flat (the link remembers nothing per stream name)', async (t) => {
    const cluster = await RedisCluster.start();
    t.after(() => cluster.stop());
    const url = `redis+cluster://${cluster.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
    const child = spawnSync(
      process.execPath,
      [
        '--expose-gc',
        '__test__/fixtures/cluster-churn.mjs',
        JSON.stringify({ url, total: 100_000, warm: 20_000, batch: 1_000 }),
      ],
      { cwd: new URL('..', import.meta.url), encoding: 'utf8', timeout: 240_000 },
    );
    assert.equal(child.status, 0, child.stderr);
    const { warmHeap, heap, made } = JSON.parse(child.stdout.trim().split('\n').at(-1));
    assert.equal(made, 100_000);
    const grewMiB = (heap - warmHeap) / 2 ** 20;
    t.diagnostic(
      `cluster churn: heap ${(warmHeap / 2 ** 20).toFixed(1)} MiB after 20,000 channels, ${(heap / 2 ** 20).toFixed(1)} MiB after 100,000 (${grewMiB.toFixed(2)} MiB more)`,
    );
    assert.ok(grewMiB < 8, `the heap grew ${grewMiB.toFixed(2)} MiB over 80,000 more channels`);
  });
}

redisSuite(registerTests);
