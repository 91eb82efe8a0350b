// Soak: many connect/disconnect cycles while a Channel broadcasts, with
// clients that vanish mid-burst; then checks that memory came back and that
// nothing is left alive.
//
//   npm run soak                      (10,000 cycles)
//   node --expose-gc --max-semi-space-size=8 soak/soak.mjs --cycles=1000
//
// The young generation is fixed at 8 MiB per semi-space because V8's own
// sizing differs between Node majors: Node 24 and later grow it by tens of
// MiB under this allocation rate and keep it, which is V8's policy, not a
// leak, and would hide one. With it fixed, RSS after the warm-up stays
// within a few MiB on Node 20, 22, 24 and 26.
//
// Prints one JSON line and exits 1 if a check failed. Every loop is bounded
// by its count and by a deadline; all traffic stays on 127.0.0.1.
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { EventEndpoint, Channel, diagnostics } from 'native-sse';

const arg = (name, fallback) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const CYCLES = arg('cycles', 10_000);
const CONCURRENCY = arg('concurrency', 50);
const DEADLINE = Date.now() + arg('seconds', 600) * 1000;
const MiB = 1024 * 1024;

if (typeof global.gc !== 'function') {
  console.error('run with --expose-gc');
  process.exit(2);
}

const problems = [];
process.on('unhandledRejection', (reason) => problems.push(`unhandled rejection: ${reason}`));
process.on('warning', (warning) => problems.push(`warning: ${warning.name}: ${warning.message}`));

const channel = new Channel({ historySize: 100 });
let opened = 0;
let closedEvents = 0;
let serverCloses = 0;

const server = http.createServer((req, res) => {
  const endpoint = new EventEndpoint(req, res, { keepAlive: 50, reconnectionTime: 10 });
  if (endpoint.closed) return; // a stopped client's 204
  opened++;
  endpoint.addEventListener('close', () => closedEvents++);
  channel.subscribe(endpoint);
  endpoint.send('welcome').catch(() => {});
  // Some streams are ended by the server, some told not to come back.
  const fate = opened % 10;
  if (fate === 0)
    setTimeout(() => {
      serverCloses++;
      endpoint.close();
    }, 5);
  if (fate === 1)
    setTimeout(() => {
      serverCloses++;
      endpoint.close(true);
    }, 5);
});
server.keepAliveTimeout = 1000;
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address();

let broadcastId = 0;
const payload = 'p'.repeat(200);
const broadcaster = setInterval(() => {
  for (let i = 0; i < 5; i++) channel.broadcast(`${payload} ${broadcastId}`, { id: String(++broadcastId) });
}, 1);

/** One client: connects, reads a little, then vanishes in one of four ways. */
function cycle(n) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const lastId = n % 3 === 0 && broadcastId > 10 ? `\r\nLast-Event-ID: ${broadcastId - 5}` : '';
    socket.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1${lastId}\r\n\r\n`);
    let received = 0;
    const want = 200 + (n % 7) * 500;
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    const vanish = () => {
      socket.removeAllListeners('data');
      const way = n % 4;
      if (way === 0) socket.destroy();
      else if (way === 1) socket.resetAndDestroy();
      else if (way === 2) socket.end();
      else socket.destroy(new Error('gone'));
    };
    const timer = setTimeout(() => {
      vanish();
      done();
    }, 2000);
    socket.on('data', (data) => {
      received += data.length;
      if (received >= want) vanish();
    });
    socket.on('error', () => {});
    socket.on('close', done);
  });
}

async function runCycles(count) {
  let next = 0;
  const workers = Array.from({ length: CONCURRENCY }, async () => {
    while (next < count && Date.now() < DEADLINE) await cycle(next++);
  });
  await Promise.all(workers);
  return next;
}

function memory() {
  for (let i = 0; i < 4; i++) global.gc();
  const { rss, heapUsed, heapTotal } = process.memoryUsage();
  return { rss, heapUsed, heapTotal };
}

async function settle() {
  // Until every stream has closed (bounded).
  for (let i = 0; i < 500 && (diagnostics().openStreams > 0 || channel.size > 0); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}

// Warm up, so that the baseline includes what a running server always holds.
const warmup = Math.max(1000, Math.floor(CYCLES / 10));
let done = await runCycles(warmup);
await settle();
const before = memory();
done += await runCycles(Math.floor(CYCLES / 2));
await settle();
const middle = memory();
done += await runCycles(CYCLES - Math.floor(CYCLES / 2));
clearInterval(broadcaster);
await settle();
const after = memory();

const state = diagnostics();
const result = {
  cycles: done,
  streamsOpened: opened,
  closeEvents: closedEvents,
  serverCloses,
  broadcasts: broadcastId,
  heapGrowthMiB: +((after.heapUsed - before.heapUsed) / MiB).toFixed(2),
  rssGrowthMiB: +((after.rss - before.rss) / MiB).toFixed(2),
  // A leak grows with the cycles; what a busy process keeps (allocator
  // pools, V8's young generation) does not: the second half shows which.
  rssGrowthSecondHalfMiB: +((after.rss - middle.rss) / MiB).toFixed(2),
  heapCommittedGrowthMiB: +((after.heapTotal - before.heapTotal) / MiB).toFixed(2),
  openStreams: state.openStreams,
  keepAliveTimer: state.keepAliveTimer,
  directSockets: state.directSockets,
  channelSize: channel.size,
  problems,
};

const failures = [];
if (done < CYCLES + warmup) failures.push(`only ${done} cycles ran before the deadline`);
if (closedEvents !== opened) failures.push(`${opened} endpoints opened, ${closedEvents} close events`);
if (state.openStreams !== 0) failures.push(`${state.openStreams} streams still open`);
if (state.keepAliveTimer) failures.push('the keep-alive timer still runs');
if (state.directSockets !== 0) failures.push(`${state.directSockets} socket descriptors still held by Rust`);
if (channel.size !== 0) failures.push(`${channel.size} subscribers left`);
if (result.heapGrowthMiB > 4) failures.push(`heap grew by ${result.heapGrowthMiB} MiB`);
if (result.rssGrowthMiB > 32) failures.push(`RSS grew by ${result.rssGrowthMiB} MiB`);
if (result.rssGrowthSecondHalfMiB > 8)
  failures.push(`RSS grew by ${result.rssGrowthSecondHalfMiB} MiB in the second half`);
if (problems.length > 0) failures.push(...problems);
result.failures = failures;

server.close();
console.log(JSON.stringify(result));
process.exitCode = failures.length ? 1 : 0;
