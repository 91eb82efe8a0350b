// What a broadcast costs a Redis Cluster's bus, run by run.mjs in a fresh
// process against a cluster of its own: `channels` Redis-backed channels,
// each with a follower here (one SSE client), `n` broadcasts spread over
// them. Every node's `CLUSTER INFO` is read before and after: the bus
// messages sent per broadcast, of every kind and of the kind that carries a
// classic PUBLISH (`publish`) or a sharded one (`publishshard`) to other
// nodes. Prints one JSON line.
import http from 'node:http';
import { EventEndpoint, Channel } from 'native-sse';
import { redisCommands } from '../__test__/redis-server.mjs';

const { url, ports, channels: count, n, prefix } = JSON.parse(process.argv[2]);

async function busMessages() {
  const totals = { all: 0, publish: 0, publishshard: 0 };
  for (const port of ports) {
    const [info] = await redisCommands(port, [['CLUSTER', 'INFO']]);
    const text = String(info);
    totals.all += Number(/cluster_stats_messages_sent:(\d+)/.exec(text)?.[1] ?? 0);
    totals.publish += Number(/cluster_stats_messages_publish_sent:(\d+)/.exec(text)?.[1] ?? 0);
    totals.publishshard += Number(/cluster_stats_messages_publishshard_sent:(\d+)/.exec(text)?.[1] ?? 0);
  }
  return totals;
}

const channels = Array.from({ length: count }, (_, i) => new Channel({ redis: { url, stream: `${prefix}:${i}` } }));
await Promise.all(channels.map((channel) => channel.ready));
const server = http.createServer((req, res) => {
  const room = Number(new URL(req.url, 'http://x').searchParams.get('room'));
  channels[room].subscribe(new EventEndpoint(req, res));
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
let received = 0;
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
for (let room = 0; room < count; room++) {
  const request = http.get({ port, host: '127.0.0.1', path: `/events?room=${room}`, agent }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      received += chunk.split('\ndata: ').length - 1;
    });
    res.on('error', () => {});
  });
  // The server closes them at the end.
  request.on('error', () => {});
}
while (channels.some((channel) => channel.size === 0)) await new Promise((resolve) => setTimeout(resolve, 10));

const before = await busMessages();
const sent = [];
for (let i = 0; i < n; i++) sent.push(channels[i % count].broadcast(`b${i}`));
await Promise.all(sent);
while (received < n) await new Promise((resolve) => setTimeout(resolve, 10));
// The bus carries what was published a moment after: let it drain.
await new Promise((resolve) => setTimeout(resolve, 500));
const after = await busMessages();
const per = (key) => (after[key] - before[key]) / n;
console.log(
  JSON.stringify({
    busPerBroadcast: per('all'),
    publishPerBroadcast: per('publish'),
    shardPerBroadcast: per('publishshard'),
  }),
);
server.closeAllConnections();
server.close();
for (const channel of channels) channel.close();
