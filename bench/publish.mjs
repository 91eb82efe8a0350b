// Publish throughput from one process, run by run.mjs in a fresh process per
// measurement: `n` events of ~40 bytes appended to a Redis Stream, issued in
// one loop without awaiting each (what a batch or a ticker burst does) or
// each awaited in turn (a request handler that answers once its event is
// stored). Prints one JSON line: { eventsPerSecond }.
//
// Implementations:
// - redis-channel: native-sse's Redis-backed Channel.broadcast().
// - ioredis: the strongest thing a careful developer would write instead:
//   ioredis with automatic pipelining, XADD with the same trimming.
// - local-channel: the in-process Channel.broadcast(), for reference (it
//   appends nowhere; its "awaited" form has nothing to await).
import { Channel } from 'native-sse';

const { impl, mode, n, url, stream } = JSON.parse(process.argv[2]);
const MAX_LEN = 100_000;
const payload = (i) => `event ${i} ${'p'.repeat(30)}`;

let publish;
let close = () => {};
if (impl === 'redis-channel' || impl === 'local-channel') {
  const channel = new Channel(
    impl === 'redis-channel' ? { redis: { url, stream, maxLen: MAX_LEN } } : { historySize: 0 },
  );
  await channel.ready;
  publish = (data) => channel.broadcast(data);
  close = () => channel.close();
} else if (impl === 'ioredis') {
  const { default: Redis } = await import('ioredis');
  const redis = new Redis(url, { enableAutoPipelining: true, lazyConnect: true });
  await redis.connect();
  publish = (data) => redis.xadd(stream, 'MAXLEN', '~', MAX_LEN, '*', 'd', data);
  close = () => redis.disconnect();
} else {
  throw new Error(`unknown implementation ${impl}`);
}

// Warm up, so that connections and JIT are in place.
for (let i = 0; i < 200; i++) await publish(payload(i));

const started = performance.now();
if (mode === 'unawaited') {
  const pending = [];
  for (let i = 0; i < n; i++) pending.push(publish(payload(i)));
  await Promise.all(pending);
} else {
  for (let i = 0; i < n; i++) await publish(payload(i));
}
const seconds = (performance.now() - started) / 1000;
close();
console.log(JSON.stringify({ eventsPerSecond: n / seconds }));
process.exit(0);
