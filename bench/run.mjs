// npm run bench [-- --quick] [-- --only=burst,fanout]
//
// Runs every workload against every implementation, each in fresh
// processes (the server under test in one, the load in another, all on
// 127.0.0.1), three times, and prints the medians with the ratios of
// native-sse to jsext and to the hand-written baseline, measured in this run.
// The full results go to bench/results/latest.json.
import { fork, spawnSync } from 'node:child_process';
import { Redis, RedisCluster, startApp } from '../__test__/redis-server.mjs';
import { tallyEvents, until } from '../__test__/helpers.mjs';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { IMPLEMENTATIONS as ALL_IMPLEMENTATIONS } from './impls.mjs';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
/** Connections opened and closed before an idle workload's second baseline. */
const WARM_UP_CLIENTS = 200;
const only = args
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(',');
const RUNS = Number(args.find((a) => a.startsWith('--runs='))?.slice(7) ?? 3);
const IMPLEMENTATIONS =
  args
    .find((a) => a.startsWith('--impl='))
    ?.slice(7)
    .split(',') ?? ALL_IMPLEMENTATIONS;
const MiB = 1024 * 1024;

const WORKLOADS = {
  burst: {
    what: '1 client, ~40-byte messages, 1,000 per event-loop turn',
    clients: 1,
    params: { messages: quick ? 50_000 : 200_000, perTurn: 1000 },
  },
  fanout: {
    what: 'clients × messages, sent by looping over the endpoints for each message, all in one go',
    clients: quick ? 500 : 1000,
    params: { messages: quick ? 50 : 100, perTurn: quick ? 50 : 100 },
  },
  'fanout-ticker': {
    what: 'the same, but one message per event-loop turn (a ticker)',
    clients: quick ? 500 : 1000,
    params: { messages: quick ? 50 : 100, perTurn: 1 },
    // The floor: a C program making the same writes (bench/floor.c).
    implementations: ['native-sse', 'channel', 'jsext', 'baseline', 'floor', 'direct', 'direct-channel'],
  },
  // Long enough for the loop delay's p99 to rest on a few hundred samples
  // (a 1 ms timer over several seconds; with 2,000 messages, about a
  // dozen, and the ratio to the bystander moved 0.75–2.3× between runs).
  // The previous default's loop delay is in the ticker's table above (at
  // its pace, 10,000 messages would take minutes).
  'fanout-ticker-long': {
    what: 'the ticker for longer: 10,000 messages, so that loop delay percentiles have samples',
    clients: quick ? 500 : 1000,
    params: { messages: quick ? 2000 : 10_000, perTurn: 1 },
    implementations: ['native-sse', 'channel'],
  },
  // One broadcast to 15,000 clients (adopted: one descriptor each, under
  // this machine's 20,000 a process; adopt: false needs two), against raw
  // node:http's loop of res.write: how long it blocks the event loop.
  'fanout-once-15k': {
    what: 'one 40-byte event to 15,000 clients; how long the event loop is blocked',
    clients: quick ? 3000 : 15_000,
    params: { messages: 1, perTurn: 1 },
    implementations: ['baseline', 'channel'],
  },
  'fanout-h2': {
    what: 'fan-out in one go over HTTP/2 (h2c, compatibility API), one connection per client',
    clients: quick ? 500 : 1000,
    params: { messages: quick ? 50 : 100, perTurn: quick ? 50 : 100, h2: true },
    // jsext cannot serve HTTP/2: it sets Connection and Transfer-Encoding,
    // which Node refuses there (ERR_HTTP2_INVALID_CONNECTION_HEADERS).
    implementations: ['native-sse', 'channel', 'baseline'],
  },
  'fanout-h2-ticker': {
    what: 'the same, one message per event-loop turn',
    clients: quick ? 500 : 1000,
    params: { messages: quick ? 50 : 100, perTurn: 1, h2: true },
    implementations: ['native-sse', 'channel', 'baseline'],
  },
  idle: {
    what: 'open idle connections; memory per connection after GC',
    clients: quick ? 1000 : 5000,
    params: {},
  },
  // Adoption: idle connections held by Node (raw node:http, and native-sse
  // with adopt: false) and adopted by Rust (native-sse as it is by
  // default), at two sizes under this machine's 20,000-descriptor limit
  // per process.
  'idle-adopt-5k': {
    what: 'idle connections, raw node:http vs native-sse (adopted) vs adopt: false; memory per connection after GC',
    clients: quick ? 1000 : 5000,
    params: {},
    implementations: ['baseline', 'native-sse', 'direct'],
  },
  'idle-adopt-15k': {
    what: 'the same at 15,000 connections',
    clients: quick ? 3000 : 15_000,
    params: {},
    implementations: ['baseline', 'native-sse', 'direct'],
  },
  slow: {
    what: '1 client that never reads; the producer awaits each send() of 1 KiB',
    clients: 1,
    params: { bytes: (quick ? 50 : 200) * MiB, seconds: quick ? 5 : 20 },
  },
};

function nextMessage(child, types, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${types}`)), ms);
    const onMessage = (message) => {
      if (!types.includes(message.type)) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      if (message.type === 'error') reject(new Error(message.message));
      else resolve(message);
    };
    child.on('message', onMessage);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited (${code}) while waiting for ${types}`));
    });
  });
}

/** Builds the floor program once per run; null (with a notice) without a C compiler. */
let floorBinary;
function buildFloor() {
  if (floorBinary !== undefined) return floorBinary;
  const dir = mkdtempSync(join(tmpdir(), 'native-sse-floor-'));
  const binary = join(dir, 'floor');
  const cc = spawnSync('cc', ['-O2', '-o', binary, new URL('./floor.c', import.meta.url).pathname], {
    encoding: 'utf8',
  });
  floorBinary = cc.status === 0 ? binary : null;
  if (floorBinary === null)
    console.log(`Floor rows skipped: cc could not build bench/floor.c (${cc.error?.message ?? cc.stderr})`);
  return floorBinary;
}

async function runOnce(implementation, name) {
  const workload = WORKLOADS[name];
  const timeoutMs = 120_000;
  const server =
    implementation === 'floor'
      ? fork(new URL('./floor-server.mjs', import.meta.url), [
          JSON.stringify({ binary: buildFloor(), clients: workload.clients, frames: workload.params.messages }),
        ])
      : fork(
          new URL('./server.mjs', import.meta.url),
          [JSON.stringify({ implementation, workload: name, params: workload.params })],
          {
            execArgv: [
              '--expose-gc',
              ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []),
            ],
          },
        );
  let client;
  try {
    const { port } = await nextMessage(server, ['port'], 10_000);
    if (name.startsWith('idle')) {
      // Two baselines: before and after a warm-up of connections opened
      // and closed, so that what a process pays once (code compiled on its
      // first requests, native-sse's writer threads) is told apart from
      // what each connection adds. Both figures are printed.
      await nextMessage(server.send({ type: 'baseline-memory' }) && server, ['ok'], 10_000);
      const warm = fork(new URL('./client.mjs', import.meta.url), [
        JSON.stringify({ port, clients: WARM_UP_CLIENTS, frames: 0, mode: 'count', h2: false, timeoutMs }),
      ]);
      await nextMessage(warm, ['ready'], timeoutMs);
      warm.kill('SIGKILL');
      await nextMessage(server.send({ type: 'warm-up' }) && server, ['ok'], 60_000);
      await nextMessage(server.send({ type: 'baseline-memory' }) && server, ['ok'], 10_000);
    }
    const frames = name === 'burst' || name.startsWith('fanout') ? workload.params.messages : 0;
    client = fork(new URL('./client.mjs', import.meta.url), [
      JSON.stringify({
        port,
        clients: workload.clients,
        frames,
        mode: name === 'slow' ? 'stall' : 'count',
        h2: Boolean(workload.params.h2),
        timeoutMs,
      }),
    ]);
    await nextMessage(client, ['ready'], timeoutMs);

    if (name === 'burst' || name.startsWith('fanout')) {
      // Beside the long ticker, a process that does nothing measures the
      // loop delay the machine alone gives it meanwhile.
      const bystander = name === 'fanout-ticker-long' ? fork(new URL('./bystander.mjs', import.meta.url)) : null;
      if (bystander) await nextMessage(bystander, ['ready'], 10_000);
      const done = nextMessage(client, ['done', 'error'], timeoutMs);
      client.send({ type: 'go' });
      server.send({ type: 'go' });
      const { elapsedMs, frames: received } = await done;
      server.send({ type: 'report' });
      const report = await nextMessage(server, ['report'], 10_000);
      const beside =
        bystander && (await nextMessage(bystander.send({ type: 'report' }) && bystander, ['report'], 10_000));
      const deliveries = workload.clients * workload.params.messages;
      if (received < deliveries) throw new Error(`only ${received} of ${deliveries} frames arrived`);
      return name === 'burst'
        ? { messagesPerSecond: deliveries / (elapsedMs / 1000) }
        : {
            deliveriesPerSecond: deliveries / (elapsedMs / 1000),
            cpuMicrosPerDelivery: report.cpuMicros / deliveries,
            userMicrosPerDelivery: report.cpuUserMicros / deliveries,
            jsThreadMicrosPerDelivery: report.jsThreadCpuMicros == null ? null : report.jsThreadCpuMicros / deliveries,
            loopDelayP99Ms: report.loopDelayP99Ms,
            loopDelayMaxMs: report.loopDelayMaxMs,
            longestTurnMs: report.longestTurnMs,
            bystanderLoopDelayP99Ms: beside?.loopDelayP99Ms ?? null,
            // Paired within the run: the machine's load moves both.
            loopDelayVsBystander: beside ? report.loopDelayP99Ms / beside.loopDelayP99Ms : null,
          };
    }
    if (name.startsWith('idle')) {
      server.send({ type: 'report' });
      const { idle, streams } = await nextMessage(server, ['report'], 90_000);
      if (streams !== workload.clients) throw new Error(`${streams} of ${workload.clients} streams open`);
      if (idle.youngGenerationSettledMs === null)
        console.warn(
          `\n${name} / ${implementation}: V8's young generation did not shrink back within 60 s; measured as it was`,
        );
      return {
        rssKiBPerConnection: idle.rssPerConnection / 1024,
        anonymousKiBPerConnection: idle.anonymousPerConnection === null ? null : idle.anonymousPerConnection / 1024,
        heapKiBPerConnection: idle.heapPerConnection / 1024,
        coldRssKiBPerConnection: idle.coldRssPerConnection / 1024,
        coldAnonymousKiBPerConnection:
          idle.coldAnonymousPerConnection === null ? null : idle.coldAnonymousPerConnection / 1024,
        youngGenerationSettledMs: idle.youngGenerationSettledMs,
        youngGenerationKiB: idle.youngGenerationKiB,
      };
    }
    // slow
    const produced = nextMessage(server, ['produced'], timeoutMs);
    server.send({ type: 'go' });
    const { sentBytes, blocked } = await produced;
    server.send({ type: 'report' });
    const report = await nextMessage(server, ['report'], 10_000);
    return { peakRssGrowthMiB: report.peakRssGrowth / MiB, acceptedMiB: sentBytes / MiB, producerHeldBack: blocked };
  } finally {
    client?.kill();
    // A clean exit, so that a --cpu-prof profile gets written.
    if (server.connected) server.send({ type: 'exit' });
    await Promise.race([
      new Promise((resolve) => server.once('exit', resolve)),
      new Promise((resolve) => setTimeout(resolve, 5000)),
    ]);
    server.kill();
  }
}

// Scale-out: one channel over two processes through Redis, against the
// in-process Channel serving the same number of clients from one process.

async function startRedis() {
  if (spawnSync('redis-server', ['--version']).status !== 0) return null;
  const redis = await Redis.start({ durable: false });
  return { redis, url: redis.url, stop: () => redis.stop() };
}

/** Publish throughput, one fresh process per measurement. */
function runPublish(impl, mode, redisUrl, run) {
  const n = mode === 'unawaited' ? (quick ? 20_000 : 100_000) : quick ? 2_000 : 10_000;
  const params = { impl, mode, n, url: redisUrl, stream: `bench-publish-${process.pid}-${impl}-${mode}-${run}` };
  const child = spawnSync(
    process.execPath,
    [new URL('./publish.mjs', import.meta.url).pathname, JSON.stringify(params)],
    {
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
  if (child.status !== 0) throw new Error(`publish bench ${impl}/${mode} failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1));
}

/** Many channels on one link (bench/channels.mjs): publish throughput and
 * publish→delivery latency with `channels` channels in one process. */
function runChannels(channels, redisUrl, run) {
  const params = {
    url: redisUrl,
    channels,
    n: quick ? 10_000 : 50_000,
    paced: quick ? 1_000 : 3_000,
    prefix: `bench-channels-${process.pid}-${channels}-${run}`,
  };
  const child = spawnSync(
    process.execPath,
    [new URL('./channels.mjs', import.meta.url).pathname, JSON.stringify(params)],
    { encoding: 'utf8', timeout: 300_000 },
  );
  if (child.status !== 0) throw new Error(`channels bench (${channels}) failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1));
}

/** What a broadcast costs a cluster's bus (bench/cluster-bus.mjs). */
function runClusterBus(cluster, run) {
  const params = {
    url: clusterUrl(cluster),
    ports: cluster.nodes.map((node) => node.port),
    channels: 100,
    n: quick ? 2_000 : 10_000,
    prefix: `bench-bus-${process.pid}-${run}`,
  };
  const child = spawnSync(
    process.execPath,
    [new URL('./cluster-bus.mjs', import.meta.url).pathname, JSON.stringify(params)],
    { encoding: 'utf8', timeout: 300_000 },
  );
  if (child.status !== 0) throw new Error(`cluster bus bench failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1));
}

function clusterUrl(cluster) {
  return `redis+cluster://${cluster.nodes.map((node) => `127.0.0.1:${node.port}`).join(',')}`;
}

/** What an idle Redis-backed channel costs Redis (bench/redis-memory.mjs),
 * on a Redis of its own so that nothing else moves `used_memory`. */
async function runRedisMemory(channels, run) {
  const redis = await startRedis();
  try {
    const params = { url: redis.url, channels, prefix: `bench-memory-${process.pid}-${run}` };
    const child = spawnSync(
      process.execPath,
      [new URL('./redis-memory.mjs', import.meta.url).pathname, JSON.stringify(params)],
      { encoding: 'utf8', timeout: 300_000 },
    );
    if (child.status !== 0) throw new Error(`redis memory bench failed: ${child.stderr}`);
    return JSON.parse(child.stdout.trim().split('\n').at(-1));
  } finally {
    redis.stop();
  }
}

/** The floor: Redis's own benchmark client appending the same entries,
 * pipelined 100 deep, as fast as the server takes them. */
function redisFloor(redisUrl) {
  const port = new URL(redisUrl).port;
  const run = spawnSync(
    'redis-benchmark',
    [
      '-p',
      port,
      '-n',
      quick ? '50000' : '200000',
      '-P',
      '100',
      '-q',
      'XADD',
      `bench-floor-${process.pid}`,
      'MAXLEN',
      '~',
      '100000',
      '*',
      'd',
      `event 0 ${'p'.repeat(30)}`,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  const match = /([\d.]+) requests per second/.exec(run.stdout ?? '');
  return match ? Number(match[1]) : null;
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function runScaleout(kind, redisUrl, run) {
  const perProcess = quick ? 250 : 500;
  const messages = quick ? 50 : 100;
  const processes = kind === 'redis' ? 2 : 1;
  const clientsEach = (2 * perProcess) / processes;
  const params = { redis: redisUrl, stream: `bench-${process.pid}-${kind}-${run}`, messages, perTurn: 1 };
  const implementation = kind === 'redis' ? 'redis-channel' : 'channel';
  const servers = [];
  const clients = [];
  try {
    for (let i = 0; i < processes; i++) {
      servers.push(
        fork(
          new URL('./server.mjs', import.meta.url),
          [JSON.stringify({ implementation, workload: 'scaleout', params })],
          { execArgv: ['--expose-gc'] },
        ),
      );
    }
    const ports = await Promise.all(servers.map((server) => nextMessage(server, ['port'], 20_000).then((m) => m.port)));
    for (const port of ports) {
      clients.push(
        fork(new URL('./client.mjs', import.meta.url), [
          JSON.stringify({
            port,
            clients: clientsEach,
            frames: messages,
            mode: 'count',
            latency: true,
            timeoutMs: 120_000,
          }),
        ]),
      );
    }
    await Promise.all(clients.map((client) => nextMessage(client, ['ready'], 120_000)));
    await new Promise((resolve) => setTimeout(resolve, 200)); // subscriptions are live
    const done = clients.map((client) => nextMessage(client, ['done', 'error'], 120_000));
    for (const client of clients) client.send({ type: 'go' });
    servers[0].send({ type: 'go' }); // one process publishes; all deliver
    const results = await Promise.all(done);
    const latencies = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
    const elapsedMs = Math.max(...results.map((r) => r.elapsedMs));
    return {
      deliveriesPerSecond: (2 * perProcess * messages) / (elapsedMs / 1000),
      latencyP50Ms: percentile(latencies, 50),
      latencyP99Ms: percentile(latencies, 99),
    };
  } finally {
    for (const child of [...clients, ...servers]) child.kill();
  }
}

/**
 * Resume: five clients of one process (the Redis tests' app,
 * __test__/fixtures/redis-app.mjs) resume a backlog of `backlog` entries at
 * once. The figures are that process's longest event-loop stall and its
 * peak RSS growth while they catch up; beside them, the same process's
 * longest stall over as long a time with no client (what sampling on this
 * machine shows by itself), measured once they have caught up.
 */
async function runResume(redis, run) {
  const backlog = quick ? 50_000 : 200_000;
  const stream = `bench-resume-${process.pid}-${run}`;
  const commands = [];
  for (let i = 0; i < backlog; i++) commands.push(['XADD', stream, '*', 'd', `backlog ${i}`]);
  const ids = (await redis.commands(commands)).map(String);
  const cleanups = [];
  try {
    const app = await startApp({ after: (fn) => cleanups.push(fn) }, redis, stream, { MAX_LEN: '0' });
    const before = await app.stats(true);
    const started = performance.now();
    const clients = Array.from({ length: 5 }, () =>
      tallyEvents(`${app.url}/events`, { headers: { 'Last-Event-ID': ids[0] }, keep: 0 }),
    );
    cleanups.push(() => {
      for (const c of clients) c.close();
    });
    await until(() => clients.every((c) => c.count >= backlog - 1), 120_000, 'the clients to catch up');
    const seconds = (performance.now() - started) / 1000;
    const busy = await app.stats(true);
    if (clients.some((c) => c.outOfOrder > 0 || c.count !== backlog - 1))
      throw new Error('resume: events out of order or twice');
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const idle = await app.stats();
    return {
      entriesPerSecond: (5 * (backlog - 1)) / seconds,
      stallMs: busy.maxStall,
      idleStallMs: idle.maxStall,
      rssGrowthMiB: (busy.peakRss - before.rss) / MiB,
    };
  } finally {
    for (const fn of cleanups) fn();
  }
}

const median = (values) => {
  const sorted = values.filter((v) => typeof v === 'number').sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : null;
};

const METRICS = [
  ['burst', 'messagesPerSecond', 'burst: messages/s', 'higher'],
  ['fanout', 'deliveriesPerSecond', 'fan-out: deliveries/s', 'higher'],
  ['fanout', 'cpuMicrosPerDelivery', 'fan-out: server CPU µs/delivery', 'lower'],
  // The producer's loop blocks the event loop for its whole length here, so
  // the longest stall (loop plus flush) is the figure, not a percentile.
  ['fanout', 'loopDelayMaxMs', 'fan-out: longest event-loop stall (ms)', 'lower'],
  ['fanout-ticker', 'deliveriesPerSecond', 'fan-out, 1 msg/turn: deliveries/s', 'higher'],
  ['fanout-ticker', 'cpuMicrosPerDelivery', 'fan-out, 1 msg/turn: CPU µs/delivery', 'lower'],
  ['fanout-ticker', 'loopDelayP99Ms', 'fan-out, 1 msg/turn: loop delay p99 (ms)', 'lower'],
  ['fanout-h2', 'deliveriesPerSecond', 'HTTP/2 fan-out: deliveries/s', 'higher'],
  ['fanout-h2', 'cpuMicrosPerDelivery', 'HTTP/2 fan-out: CPU µs/delivery', 'lower'],
  ['fanout-h2-ticker', 'deliveriesPerSecond', 'HTTP/2 fan-out, 1 msg/turn: deliveries/s', 'higher'],
  ['fanout-h2-ticker', 'cpuMicrosPerDelivery', 'HTTP/2 fan-out, 1 msg/turn: CPU µs/delivery', 'lower'],
  ['fanout-h2-ticker', 'loopDelayP99Ms', 'HTTP/2 fan-out, 1 msg/turn: loop p99 (ms)', 'lower'],
  ['idle', 'rssKiBPerConnection', 'idle: RSS KiB/connection', 'lower'],
  ['idle', 'heapKiBPerConnection', 'idle: heap KiB/connection', 'lower'],
  ['slow', 'peakRssGrowthMiB', 'slow consumer: peak RSS growth (MiB)', 'lower'],
  ['slow', 'acceptedMiB', 'slow consumer: MiB accepted by send()', 'info'],
];

const results = {};
const started = Date.now();
for (const name of Object.keys(WORKLOADS)) {
  if (only && !only.includes(name)) continue;
  results[name] = {};
  const candidates = [
    ...IMPLEMENTATIONS,
    ...(WORKLOADS[name].implementations?.includes('floor') && buildFloor() ? ['floor'] : []),
    ...['direct', 'direct-channel'].filter((i) => WORKLOADS[name].implementations?.includes(i)),
  ];
  for (const implementation of candidates) {
    const runsHere =
      WORKLOADS[name].implementations ??
      (name.startsWith('fanout') ? IMPLEMENTATIONS : IMPLEMENTATIONS.filter((i) => i !== 'channel'));
    if (!runsHere.includes(implementation)) continue;
    const runs = [];
    for (let run = 0; run < RUNS; run++) {
      process.stderr.write(`${name} / ${implementation} / run ${run + 1}\r`);
      runs.push(await runOnce(implementation, name));
    }
    const medians = {};
    for (const key of Object.keys(runs[0]))
      medians[key] = typeof runs[0][key] === 'number' ? median(runs.map((r) => r[key])) : runs.map((r) => r[key]);
    results[name][implementation] = { runs, median: medians };
  }
}
let scaleout = null;
if (!only || only.includes('scaleout')) {
  const redis = await startRedis();
  if (redis === null) {
    console.log('Scale-out rows skipped: redis-server is not on the PATH (apt-get install redis-server).');
  } else {
    try {
      scaleout = {};
      const publish = {};
      for (const impl of ['redis-channel', 'ioredis', 'local-channel']) {
        for (const mode of ['unawaited', 'awaited']) {
          const runs = [];
          for (let run = 0; run < RUNS; run++) {
            process.stderr.write(`publish / ${impl} / ${mode} / run ${run + 1}\r`);
            runs.push(runPublish(impl, mode, redis.url, run).eventsPerSecond);
          }
          publish[`${impl} ${mode}`] = { runs, median: median(runs) };
        }
      }
      const floors = [];
      for (let run = 0; run < RUNS; run++) floors.push(redisFloor(redis.url));
      publish.floor = { runs: floors, median: median(floors) };
      scaleout.publish = publish;
      for (const kind of ['redis', 'local']) {
        const runs = [];
        for (let run = 0; run < RUNS; run++) {
          process.stderr.write(`scaleout / ${kind} / run ${run + 1}\r`);
          runs.push(await runScaleout(kind, redis.url, run));
        }
        const medians = {};
        for (const key of Object.keys(runs[0])) medians[key] = median(runs.map((r) => r[key]));
        scaleout[kind] = { runs, median: medians };
      }
      const resumeRuns = [];
      for (let run = 0; run < RUNS; run++) {
        process.stderr.write(`resume / run ${run + 1}\r`);
        resumeRuns.push(await runResume(redis.redis, run));
      }
      const resumeMedians = {};
      for (const key of Object.keys(resumeRuns[0])) resumeMedians[key] = median(resumeRuns.map((r) => r[key]));
      scaleout.resume = { runs: resumeRuns, median: resumeMedians };
      scaleout.channels = {};
      for (const channels of [1, 1_000, 100_000]) {
        const runs = [];
        for (let run = 0; run < RUNS; run++) {
          process.stderr.write(`channels / ${channels} / run ${run + 1}\r`);
          runs.push(runChannels(channels, redis.url, run));
        }
        const medians = {};
        for (const key of Object.keys(runs[0])) medians[key] = median(runs.map((r) => r[key]));
        scaleout.channels[channels] = { runs, median: medians };
      }
    } finally {
      redis.stop();
    }
  }
}
/** Many channels on one link, on one server and on a 3-master cluster, in
 * one run (bench/channels.mjs); and the cluster bus's cost per broadcast. */
let deployments = null;
if (only?.includes('cluster') && spawnSync('redis-server', ['--version']).status === 0) {
  deployments = { server: {}, cluster: {}, bus: null };
  const redis = await startRedis();
  const cluster = await RedisCluster.start();
  try {
    for (const [name, url] of [
      ['server', redis.url],
      ['cluster', clusterUrl(cluster)],
    ]) {
      for (const channels of [1, 1_000, 100_000]) {
        const runs = [];
        for (let run = 0; run < RUNS; run++) {
          process.stderr.write(`channels / ${name} / ${channels} / run ${run + 1}\r`);
          runs.push(runChannels(channels, url, `${name}-${run}`));
        }
        const medians = {};
        for (const key of Object.keys(runs[0])) medians[key] = median(runs.map((r) => r[key]));
        deployments[name][channels] = { runs, median: medians };
      }
    }
    const bus = [];
    for (let run = 0; run < RUNS; run++) {
      process.stderr.write(`cluster bus / run ${run + 1}\r`);
      bus.push(runClusterBus(cluster, run));
    }
    const medians = {};
    for (const key of Object.keys(bus[0])) medians[key] = median(bus.map((r) => r[key]));
    deployments.bus = { runs: bus, median: medians };
  } finally {
    redis.stop();
    await cluster.stop();
  }
}

let redisMemory = null;
const REDIS_MEMORY_CHANNELS = quick ? 2_000 : 10_000;
if ((!only || only.includes('redis-memory')) && spawnSync('redis-server', ['--version']).status === 0) {
  const runs = [];
  for (let run = 0; run < RUNS; run++) {
    process.stderr.write(`redis memory / run ${run + 1}\r`);
    runs.push(await runRedisMemory(REDIS_MEMORY_CHANNELS, run));
  }
  const medians = {};
  for (const key of Object.keys(runs[0])) medians[key] = median(runs.map((r) => r[key]));
  redisMemory = { runs, median: medians };
}
process.stderr.write(`${' '.repeat(60)}\r`);

function format(value) {
  if (value === null || value === undefined) return '–';
  if (value >= 10_000) return Math.round(value).toLocaleString('en-US');
  if (value >= 100) return value.toFixed(0);
  if (value >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

function ratio(direction, native, other) {
  if (direction === 'info' || !native || !other) return '–';
  return `${(direction === 'higher' ? native / other : other / native).toFixed(2)}×`;
}

const rows = [
  [
    `metric (median of ${RUNS})`,
    ...IMPLEMENTATIONS,
    'native vs jsext',
    'native vs baseline',
    'channel vs native loop',
    'channel vs jsext',
  ],
];
for (const [name, key, label, direction] of METRICS) {
  if (!results[name]) continue;
  const value = (impl) => results[name][impl]?.median[key];
  rows.push([
    label,
    ...IMPLEMENTATIONS.map((impl) => format(value(impl))),
    ratio(direction, value('native-sse'), value('jsext')),
    ratio(direction, value('native-sse'), value('baseline')),
    ratio(direction, value('channel'), value('native-sse')),
    ratio(direction, value('channel'), value('jsext')),
  ]);
}
const widths = rows[0].map((_, col) => Math.max(...rows.map((row) => row[col].length)));
const line = (row) =>
  `| ${row.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]) : cell.padStart(widths[col]))).join(' | ')} |`;
console.log(line(rows[0]));
console.log(`|${widths.map((w, col) => (col === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
for (const row of rows.slice(1)) console.log(line(row));
const ticker = results['fanout-ticker'];
if (ticker?.floor) {
  const floor = ticker.floor.median;
  console.log(
    `\nOne message per turn to ${WORKLOADS['fanout-ticker'].clients} clients, against the floor (bench/floor.c: the same writes from C, no runtime):`,
  );
  console.log(
    '| implementation | server CPU µs/delivery | × the floor | JS thread µs/delivery | JS thread × the floor | loop delay p99 ms | deliveries/s |',
  );
  console.log('|---|--:|--:|--:|--:|--:|--:|');
  for (const impl of ['floor', ...IMPLEMENTATIONS, 'direct', 'direct-channel']) {
    const m = ticker[impl]?.median;
    if (!m) continue;
    // The floor is one thread: all its CPU is its thread's.
    const number = (v) => (typeof v === 'number' ? v : null);
    const js = impl === 'floor' ? m.cpuMicrosPerDelivery : number(m.jsThreadMicrosPerDelivery);
    const loopDelay = number(m.loopDelayP99Ms);
    console.log(
      `| ${impl} | ${format(m.cpuMicrosPerDelivery)} | ${(m.cpuMicrosPerDelivery / floor.cpuMicrosPerDelivery).toFixed(2)}× | ${js == null ? '–' : format(js)} | ${js == null ? '–' : `${(js / floor.cpuMicrosPerDelivery).toFixed(2)}×`} | ${format(loopDelay)} | ${format(m.deliveriesPerSecond)} |`,
    );
  }
}
const once = results['fanout-once-15k'];
if (once) {
  console.log(
    `\nOne broadcast to ${WORKLOADS['fanout-once-15k'].clients.toLocaleString('en-US')} clients (every one received it):`,
  );
  console.log('| implementation | event loop busy with it (ms) | longest event-loop delay (ms) |');
  console.log('|---|--:|--:|');
  for (const impl of WORKLOADS['fanout-once-15k'].implementations) {
    const m = once[impl]?.median;
    if (m) console.log(`| ${impl} | ${format(m.longestTurnMs)} | ${format(m.loopDelayMaxMs)} |`);
  }
}
const long = results['fanout-ticker-long'];
if (long) {
  console.log(
    `\nThe ticker for longer (${WORKLOADS['fanout-ticker-long'].clients} clients, ${WORKLOADS['fanout-ticker-long'].params.messages.toLocaleString('en-US')} messages, one per turn), for its event-loop delay:`,
  );
  console.log(
    "| implementation | deliveries/s | JS thread µs/delivery | loop delay p99 ms | max ms | a process doing nothing beside it: p99 ms | p99 × the bystander's (median of the runs' ratios) |",
  );
  console.log('|---|--:|--:|--:|--:|--:|--:|');
  for (const impl of WORKLOADS['fanout-ticker-long'].implementations) {
    const m = long[impl]?.median;
    if (!m) continue;
    console.log(
      `| ${impl} | ${format(m.deliveriesPerSecond)} | ${format(m.jsThreadMicrosPerDelivery)} | ${format(m.loopDelayP99Ms)} | ${format(m.loopDelayMaxMs)} | ${format(m.bystanderLoopDelayP99Ms)} | ${m.loopDelayVsBystander == null ? '–' : `${m.loopDelayVsBystander.toFixed(2)}×`} |`,
    );
  }
}
let idleHeaderPrinted = false;
for (const name of ['idle-adopt-5k', 'idle-adopt-15k']) {
  const idle = results[name];
  if (!idle) continue;
  if (!idleHeaderPrinted) {
    idleHeaderPrinted = true;
    console.log(
      `\nIdle connections (memory per connection after GC, once V8's young generation has shrunk back after the burst of connections; heap included in RSS, less its young generation's headroom; anonymous: RSS less the pages of files, the code paged in as the first connections run it). Each connection's own: from a baseline taken after ${WARM_UP_CLIENTS} connections were opened and closed; with what the process pays once: from before them:`,
    );
    console.log(
      '| connections | implementation | RSS KiB/connection | anonymous | heap | RSS vs raw node:http | anonymous vs raw | with the one-time cost: RSS | anonymous | RSS vs raw | anonymous vs raw |',
    );
    console.log('|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  }
  const raw = idle.baseline?.median;
  const ratio = (m, key) => (raw?.[key] ? `${(m[key] / raw[key]).toFixed(2)}×` : '–');
  for (const [impl, label] of [
    ['baseline', 'raw node:http'],
    ['native-sse', 'native-sse (adopted)'],
    ['direct', 'native-sse, adopt: false'],
  ]) {
    const m = idle[impl]?.median;
    if (!m) continue;
    console.log(
      `| ${WORKLOADS[name].clients.toLocaleString('en-US')} | ${label} | ${format(m.rssKiBPerConnection)} | ${format(m.anonymousKiBPerConnection)} | ${format(m.heapKiBPerConnection)} | ${ratio(m, 'rssKiBPerConnection')} | ${ratio(m, 'anonymousKiBPerConnection')} | ${format(m.coldRssKiBPerConnection)} | ${format(m.coldAnonymousKiBPerConnection)} | ${ratio(m, 'coldRssKiBPerConnection')} | ${ratio(m, 'coldAnonymousKiBPerConnection')} |`,
    );
  }
}
if (results['fanout-h2'])
  console.log(
    '\nHTTP/2 rows: jsext cannot serve HTTP/2 (it sets Connection and Transfer-Encoding, which Node refuses there).',
  );
console.log(
  '\nnative-sse: EventEndpoint.send() looped over the endpoints; channel: one Channel.broadcast() per message.',
);
console.log(
  `Ratios are the first one's advantage (above 1× is better for it). ${quick ? 'Quick sizes. ' : ''}` +
    `${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}, ${((Date.now() - started) / 1000).toFixed(0)} s.`,
);
if (results.slow) {
  const held = IMPLEMENTATIONS.filter((impl) => results.slow[impl]).map(
    (impl) => `${impl}: ${results.slow[impl].median.producerHeldBack.every(Boolean) ? 'held back' : 'not held back'}`,
  );
  console.log(`Slow consumer producer: ${held.join(', ')}.`);
}

if (scaleout) {
  const perProcess = quick ? 250 : 500;
  const r = scaleout.redis.median;
  const l = scaleout.local.median;
  console.log(`\nScale-out, ${2 * perProcess} clients, 1 message per turn (median of ${RUNS}):`);
  console.log('| setup | deliveries/s | publish→delivery p50 (ms) | p99 (ms) |');
  console.log('|---|--:|--:|--:|');
  console.log(
    `| Redis-backed Channel, 2 processes × ${perProcess} clients | ${format(r.deliveriesPerSecond)} | ${format(r.latencyP50Ms)} | ${format(r.latencyP99Ms)} |`,
  );
  console.log(
    `| in-process Channel, 1 process × ${2 * perProcess} clients | ${format(l.deliveriesPerSecond)} | ${format(l.latencyP50Ms)} | ${format(l.latencyP99Ms)} |`,
  );
  const p = (key) => scaleout.publish[key].median;
  const floor = scaleout.publish.floor.median;
  console.log(`\nPublish throughput from one process, ~40-byte events (median of ${RUNS}; events/s):`);
  console.log(
    '| publisher | not awaited | awaited one by one | not awaited vs ioredis | vs redis-benchmark -P 100 (floor) |',
  );
  console.log('|---|--:|--:|--:|--:|');
  const ratioTo = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : '–');
  console.log(
    `| Redis-backed Channel.broadcast() | ${format(p('redis-channel unawaited'))} | ${format(p('redis-channel awaited'))} | ${ratioTo(p('redis-channel unawaited'), p('ioredis unawaited'))} | ${ratioTo(p('redis-channel unawaited'), floor)} |`,
  );
  console.log(
    `| ioredis XADD, auto-pipelined (baseline) | ${format(p('ioredis unawaited'))} | ${format(p('ioredis awaited'))} | 1.00× | ${ratioTo(p('ioredis unawaited'), floor)} |`,
  );
  console.log(
    `| in-process Channel.broadcast() (no Redis) | ${format(p('local-channel unawaited'))} | ${format(p('local-channel awaited'))} | – | – |`,
  );
  console.log(`| redis-benchmark XADD, pipelined 100 deep (floor) | ${format(floor)} | – | – | 1.00× |`);
  const resume = scaleout.resume.median;
  console.log(
    `\nResume: 5 clients of one process catch up on a ${quick ? '50,000' : '200,000'}-entry backlog at once (median of ${RUNS}):`,
  );
  console.log(
    '| entries delivered/s | longest event-loop stall (ms) | the same process idle (ms) | peak RSS growth (MiB) |',
  );
  console.log('|--:|--:|--:|--:|');
  console.log(
    `| ${format(resume.entriesPerSecond)} | ${format(resume.stallMs)} | ${format(resume.idleStallMs)} | ${format(resume.rssGrowthMiB)} |`,
  );
  console.log(
    `\nMany channels on one link, one process (median of ${RUNS}; up to 1,000 of them with a client; broadcasts to random channels):`,
  );
  console.log('| channels | publish, not awaited (events/s) | publish→delivery p50 (ms) | p99 (ms) |');
  console.log('|--:|--:|--:|--:|');
  for (const [channels, { median: m }] of Object.entries(scaleout.channels)) {
    console.log(
      `| ${Number(channels).toLocaleString('en-US')} | ${format(m.publishPerSecond)} | ${format(m.latencyP50Ms)} | ${format(m.latencyP99Ms)} |`,
    );
  }
  results.scaleout = scaleout;
}

if (deployments !== null) {
  console.log(
    `\nMany channels on one link, on one server and on a Redis Cluster of 3 masters, same run (median of ${RUNS}; up to 1,000 channels with a client; broadcasts to random channels):`,
  );
  console.log('| deployment | channels | publish, not awaited (events/s) | publish→delivery p50 (ms) | p99 (ms) |');
  console.log('|---|--:|--:|--:|--:|');
  for (const name of ['server', 'cluster']) {
    for (const [channels, { median: m }] of Object.entries(deployments[name])) {
      console.log(
        `| ${name === 'server' ? 'one server' : 'cluster, 3 masters'} | ${Number(channels).toLocaleString('en-US')} | ${format(m.publishPerSecond)} | ${format(m.latencyP50Ms)} | ${format(m.latencyP99Ms)} |`,
      );
    }
  }
  const bus = deployments.bus.median;
  console.log(
    `\nCluster bus messages sent per broadcast (3 masters, 100 followed channels, sum over the nodes' CLUSTER INFO): ${format(bus.busPerBroadcast)} in all, ${format(bus.publishPerBroadcast)} carrying a PUBLISH, ${format(bus.shardPerBroadcast)} a sharded one.`,
  );
  results.deployments = deployments;
}

if (redisMemory !== null) {
  const m = redisMemory.median;
  console.log(
    `\nRedis memory per idle channel: ${REDIS_MEMORY_CHANNELS.toLocaleString('en-US')} channels, each given chat messages of about 100 bytes of JSON, then left (median of ${RUNS}; redis.ttl at its default, so each stream also has an expiry):`,
  );
  console.log('| each stream holds | Redis used_memory per channel (bytes) | MEMORY USAGE of one stream (bytes) |');
  console.log('|---|--:|--:|');
  console.log(`| 1 entry | ${format(m.oneEntry)} | ${format(m.oneEntryUsage)} |`);
  console.log(`| 10 entries | ${format(m.tenEntries)} | ${format(m.tenEntriesUsage)} |`);
  console.log(`| nothing: after deleteHistory() | ${format(m.afterDelete)} | – |`);
  results.redisMemory = redisMemory;
}

const out = new URL('./results/', import.meta.url);
mkdirSync(out, { recursive: true });
const record = {
  date: new Date().toISOString(),
  node: process.version,
  quick,
  runs: RUNS,
  workloads: WORKLOADS,
  results,
};
writeFileSync(new URL('latest.json', out), `${JSON.stringify(record, null, 2)}\n`);
console.log(`Results: bench/results/latest.json`);
