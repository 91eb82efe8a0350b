// The server under test, in its own process. The orchestrator (run.mjs)
// drives it over IPC: it reports its port, then runs one workload on "go"
// and reports its own measurements on "report".
import http from 'node:http';
import { openSync, readFileSync, readSync } from 'node:fs';
import http2 from 'node:http2';
import { createHistogram, performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { loadImplementation } from './impls.mjs';

const { implementation, workload, params } = JSON.parse(process.argv[2]);
const impl = await loadImplementation(implementation, params);
const streams = [];

// HTTP/2 workloads are served in cleartext (h2c) through the compatibility
// API, so that the load is the same sockets as with HTTP/1.1.
/** Requests whose connection has closed: the warm-up's (see 'warm-up'),
 * the only ones watched, so that a listener does not weigh on the
 * connections measured. */
let closedRequests = 0;
let warming = workload.startsWith('idle');
const server = (params.h2 ? http2 : http).createServer((req, res) => {
  if (warming) req.once('close', () => closedRequests++);
  streams.push(impl.open(req, res));
});
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  process.send({ type: 'port', port: server.address().port });
});

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

// RSS is read from a descriptor opened now: a server that holds as many
// connections as its limit allows could not open one later
// (process.memoryUsage() opens /proc/self/stat each time).
const statm = (() => {
  try {
    return openSync('/proc/self/statm', 'r');
  } catch {
    return null;
  }
})();
const statmBuffer = Buffer.alloc(256);
const statmFields = () =>
  statmBuffer
    .toString('latin1', 0, readSync(statm, statmBuffer, 0, statmBuffer.length, 0))
    .split(' ')
    .map(Number);
const residentPages = () => statmFields()[1];
/** Resident pages that are not a file's (code of node and of the addon,
 * paged in as the first connections run it): the process's own memory. */
const anonymousPages = () => {
  const [, resident, shared] = statmFields();
  return resident - shared;
};
// The page size, from what process.memoryUsage() says now (a power of two).
const pageSize = statm === null ? 0 : 2 ** Math.round(Math.log2(process.memoryUsage.rss() / residentPages()));
function residentBytes() {
  return statm === null ? process.memoryUsage.rss() : residentPages() * pageSize;
}

function gcMemory() {
  for (let i = 0; i < 3; i++) global.gc();
  return {
    rss: residentBytes(),
    anonymous: statm === null ? null : anonymousPages() * pageSize,
    heapUsed: v8.getHeapStatistics().used_heap_size,
    // Resident headroom for new objects, which V8 grows with a burst of
    // allocation and gives back later: it is taken out of the RSS and
    // anonymous figures (from both measures), so that where the young
    // generation stands at either is not counted as the connections'.
    young: youngGeneration(),
  };
}

/** The young generation's committed size, in bytes. */
const youngGeneration = () =>
  v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.physical_space_size ?? 0;

/** A burst of connections grows V8's young generation to its most (32 MiB
 * here), and V8 gives it back only once its memory reducer sees the
 * process idle, some seconds later: what idle connections cost is
 * measured after that, for every implementation alike, or the burst's
 * leftover is divided among the connections. Waits until the young
 * generation is back to its size before the connections (or 1 MiB more),
 * for at most 60 s; returns how long that took, or null if it never was. */
async function youngGenerationSettled(before) {
  const started = performance.now();
  while (performance.now() - started < 60_000) {
    if (youngGeneration() <= before + 1024 * 1024) return performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return null;
}

/** Memory (`key`: rss or anonymous, less the young generation) added per
 * stream since `from`. */
function perConnection(memory, from, key) {
  if (memory[key] === null) return null;
  return (memory[key] - memory.young - (from[key] - from.young)) / streams.length;
}

let baselineMemory = null;
/** The memory before the warm-up (see 'warm-up'): the first baseline. */
let coldMemory = null;
let youngAtBaseline = 0;
/** What the workload said when it was done. */
let producedResult = null;
let cpuAtGo = null;
// The JavaScript thread's own CPU time, in µs (Linux: the main thread's
// utime + stime in /proc, in clock ticks of 10 ms, USER_HZ being 100), so
// that what other threads do (Rust's writers) is told apart; null
// elsewhere.
function jsThreadCpuMicros() {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return null;
  }
}
let jsThreadAtGo = null;

// Event-loop delay: how late a 1 ms interval fires, in µs. Written here
// rather than with monitorEventLoopDelay, whose first tick after a reset only
// takes a timestamp, so that a stall right after "go" is not seen.
const delay = createHistogram();
let delaySampler = null;
function watchLoopDelay() {
  let due = performance.now() + 1;
  delaySampler = setInterval(() => {
    const now = performance.now();
    delay.record(Math.max(1, Math.round((now - due) * 1000)));
    due = now + 1;
  }, 1);
}
let peakRss = 0;
let rssAtGo = 0;

/** ~40-byte messages, distinct within a turn. */
function messages(count) {
  return Array.from({ length: count }, (_, i) =>
    `tick ${String(i).padStart(6, '0')} of the burst workload`.slice(0, 40),
  );
}

async function burst() {
  const [stream] = streams;
  const texts = messages(params.perTurn);
  for (let turn = 0; turn < params.messages / params.perTurn; turn++) {
    for (let i = 0; i < params.perTurn; i++) impl.send(stream, texts[i]);
    await nextTurn();
  }
}

/** Each message goes to every client by a loop over the streams;
 * `perTurn` messages are sent before the event loop gets a turn. */
async function fanout() {
  const texts = messages(params.messages);
  // The longest a turn's sends and what they set off before the next turn
  // (the flush: native-sse's runs in an immediate queued before ours) kept
  // the event loop busy.
  let longestTurnMs = 0;
  let turnStart = performance.now();
  for (let m = 0; m < params.messages; m++) {
    const text = texts[m];
    if (impl.broadcast) impl.broadcast(text);
    else for (const stream of streams) impl.send(stream, text);
    if ((m + 1) % params.perTurn === 0) {
      await nextTurn();
      const now = performance.now();
      longestTurnMs = Math.max(longestTurnMs, now - turnStart);
      turnStart = now;
    }
  }
  return { longestTurnMs };
}

/** Scale-out: messages stamped with the time they are published, one per
 * turn; a Redis-backed channel's publish is awaited (it resolves once Redis
 * has the entry), the in-process channel's is immediate. */
async function scaleout() {
  for (let m = 0; m < params.messages; m++) {
    const text = `${(performance.timeOrigin + performance.now()).toFixed(3)} ${'s'.repeat(24)}`;
    await impl.broadcast(text);
    await nextTurn();
  }
}

async function slowConsumer() {
  const [stream] = streams;
  const frame = 'x'.repeat(1024 - 8);
  const deadline = Date.now() + params.seconds * 1000;
  const sample = () => (peakRss = Math.max(peakRss, process.memoryUsage().rss));
  const sampler = setInterval(sample, 20);
  let sent = 0;
  let lastProgress = Date.now();
  let blocked = false;
  // Bounded by bytes and by time; a producer held back by backpressure for
  // 2 s is taken as held for good (its client never reads).
  while (sent * 1024 < params.bytes && Date.now() < deadline) {
    const done = impl.send(stream, frame);
    if (done && typeof done.then === 'function') {
      const settled = await Promise.race([done.then(() => true), new Promise((r) => setTimeout(r, 2000, false))]);
      if (!settled) {
        blocked = true;
        break;
      }
    }
    sent++;
    if (sent % 256 === 0) sample();
    if (Date.now() - lastProgress > 100) {
      lastProgress = Date.now();
      await nextTurn();
    }
  }
  sample();
  clearInterval(sampler);
  return { sentBytes: sent * 1024, blocked };
}

process.on('message', async (message) => {
  switch (message.type) {
    case 'warm-up': {
      // The warm-up's clients have gone: once each of their requests is
      // closed, they are forgotten, and the memory they leave behind (code
      // compiled and caches filled on a first connection, threads started)
      // is in the baseline: what is measured after is what each connection
      // adds.
      while (closedRequests < streams.length) await new Promise((resolve) => setTimeout(resolve, 50));
      streams.length = 0;
      warming = false;
      process.send({ type: 'ok' });
      break;
    }
    case 'baseline-memory':
      baselineMemory = gcMemory();
      coldMemory ??= baselineMemory;
      youngAtBaseline = youngGeneration();
      process.send({ type: 'ok' });
      break;
    case 'go': {
      rssAtGo = gcMemory().rss;
      peakRss = rssAtGo;
      watchLoopDelay();
      cpuAtGo = process.cpuUsage();
      jsThreadAtGo = jsThreadCpuMicros();
      process.send({ type: 'started', streams: streams.length });
      const result =
        workload === 'burst'
          ? await burst()
          : workload.startsWith('fanout')
            ? await fanout()
            : workload === 'scaleout'
              ? await scaleout()
              : workload === 'slow'
                ? await slowConsumer()
                : {};
      producedResult = result;
      process.send({ type: 'produced', ...result });
      break;
    }
    case 'report': {
      const cpu = process.cpuUsage(cpuAtGo ?? undefined);
      clearInterval(delaySampler);
      const settledMs = workload.startsWith('idle') ? await youngGenerationSettled(youngAtBaseline) : null;
      const memory = workload.startsWith('idle') ? gcMemory() : null;
      process.send({
        type: 'report',
        streams: streams.length,
        cpuMicros: cpu.user + cpu.system,
        cpuUserMicros: cpu.user,
        jsThreadCpuMicros: jsThreadAtGo === null ? null : jsThreadCpuMicros() - jsThreadAtGo,
        loopDelayP99Ms: delay.count ? delay.percentile(99) / 1000 : null,
        loopDelayMaxMs: delay.count ? delay.max / 1000 : null,
        peakRssGrowth: peakRss - rssAtGo,
        longestTurnMs: producedResult?.longestTurnMs ?? null,
        idle: memory &&
          baselineMemory && {
            rssPerConnection: perConnection(memory, baselineMemory, 'rss'),
            anonymousPerConnection: perConnection(memory, baselineMemory, 'anonymous'),
            heapPerConnection: (memory.heapUsed - baselineMemory.heapUsed) / streams.length,
            // From before the warm-up: what the process paid once too.
            coldRssPerConnection: perConnection(memory, coldMemory, 'rss'),
            coldAnonymousPerConnection: perConnection(memory, coldMemory, 'anonymous'),
            youngGenerationKiB: [coldMemory.young / 1024, baselineMemory.young / 1024, memory.young / 1024],
            youngGenerationSettledMs: settledMs,
          },
      });
      break;
    }
    case 'exit':
      process.exit(0);
  }
});
