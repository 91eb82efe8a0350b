// What an idle Redis-backed channel costs Redis, run by run.mjs in a fresh
// process against a Redis of its own: `channels` channels in this process,
// each given a chat message (a JSON object of about 100 bytes) and then
// left alone, as a server with a channel per room or document leaves most
// of them. Redis's `used_memory` (keys, entries, the expiry that
// `redis.ttl` sets, the allocator's rounding) is read before, with 1 and
// with 10 entries in each stream, and after `deleteHistory()` on every
// channel; `MEMORY USAGE` of one stream is read beside it. Prints one JSON
// line.
import { Channel } from 'native-sse';
import { redisCommands } from '../__test__/redis-server.mjs';

const { url, channels: count, prefix } = JSON.parse(process.argv[2]);
const port = Number(new URL(url).port);

async function usedMemory() {
  const [info] = await redisCommands(port, [['INFO', 'memory']]);
  return Number(/^used_memory:(\d+)/m.exec(String(info))[1]);
}

async function memoryUsage(key) {
  const [bytes] = await redisCommands(port, [['MEMORY', 'USAGE', key, 'SAMPLES', '0']]);
  return Number(bytes);
}

const message = (i) => ({ user: `user-${i % 977}`, text: `message ${i}: `.padEnd(60, 'x'), at: 1_765_000_000_000 + i });

const channels = Array.from({ length: count }, (_, i) => new Channel({ redis: { url, stream: `${prefix}:${i}` } }));
await Promise.all(channels.map((channel) => channel.ready));
const before = await usedMemory();
const perChannel = async () => ((await usedMemory()) - before) / count;

let sent = 0;
const broadcastToEach = () => Promise.all(channels.map((channel) => channel.broadcast(message(sent++))));
await broadcastToEach();
const oneEntry = await perChannel();
const oneEntryUsage = await memoryUsage(`${prefix}:0`);
for (let i = 1; i < 10; i++) await broadcastToEach();
const tenEntries = await perChannel();
const tenEntriesUsage = await memoryUsage(`${prefix}:0`);
const deleted = await Promise.all(channels.map((channel) => channel.deleteHistory()));
if (!deleted.every(Boolean)) throw new Error('a stream was missing before deleteHistory()');
const afterDelete = await perChannel();
const [left] = await redisCommands(port, [['EXISTS', `${prefix}:0`]]);
if (left !== 0) throw new Error('a stream is left after deleteHistory()');
for (const channel of channels) channel.close();

console.log(JSON.stringify({ oneEntry, oneEntryUsage, tenEntries, tenEntriesUsage, afterDelete }));
