// Many channels on one Redis, run by run.mjs in a fresh process per
// measurement: `channels` Redis-backed channels in this process (on the one
// shared link), one SSE client on each of up to 1,000 of them (a node:http
// server and clients here, on 127.0.0.1). Measures, in this order:
// - publish throughput: `n` broadcasts issued without awaiting, each to a
//   random channel of all of them (subscribed or not);
// - publish→delivery latency: broadcasts paced one per millisecond, each to
//   a random subscribed channel, timed from before broadcast() to the
//   client's parse of the event.
// Prints one JSON line.
import http from 'node:http';
import { EventEndpoint, Channel } from 'native-sse';

const { url, channels: count, n, paced, prefix } = JSON.parse(process.argv[2]);
const subscribed = Math.min(count, 1_000);

const channels = [];
for (let i = 0; i < count; i++) channels.push(new Channel({ redis: { url, stream: `${prefix}:${i}`, maxLen: 1_000 } }));
await Promise.all(channels.map((channel) => channel.ready));

const server = http.createServer((req, res) => {
  const room = Number(new URL(req.url, 'http://x').searchParams.get('room'));
  const endpoint = new EventEndpoint(req, res);
  channels[room].subscribe(endpoint);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();

const latencies = [];
let received = 0;
let onReceived = () => {};
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
await Promise.all(
  Array.from(
    { length: subscribed },
    (_, room) =>
      new Promise((resolve) => {
        http.get({ port, host: '127.0.0.1', path: `/events?room=${room}`, agent }, (res) => {
          res.setEncoding('utf8');
          let buffered = '';
          res.on('data', (chunk) => {
            buffered += chunk;
            let end = buffered.indexOf('\n\n');
            while (end !== -1) {
              const frame = buffered.slice(0, end);
              buffered = buffered.slice(end + 2);
              const data = /^data: (.*)$/m.exec(frame)?.[1];
              if (data?.startsWith('t')) {
                latencies.push(performance.now() - Number(data.slice(1)));
                received++;
                onReceived();
              }
              end = buffered.indexOf('\n\n');
            }
          });
          resolve();
        });
      }),
  ),
);
// Every client subscribed (the server side says so).
while (channels.slice(0, subscribed).some((channel) => channel.size === 0)) {
  await new Promise((resolve) => setTimeout(resolve, 10));
}

let seed = 1;
const random = (below) => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % below;
};

// Throughput: broadcasts to random channels of all of them.
const started = performance.now();
const pending = [];
for (let i = 0; i < n; i++) pending.push(channels[random(count)].broadcast(`p${i}`));
await Promise.all(pending);
const publishSeconds = (performance.now() - started) / 1000;

// Latency: paced broadcasts to random subscribed channels.
const done = new Promise((resolve) => {
  onReceived = () => {
    if (received === paced) resolve();
  };
});
for (let i = 0; i < paced; i++) {
  channels[random(subscribed)].broadcast(`t${performance.now()}`);
  await new Promise((resolve) => setTimeout(resolve, 1));
}
await done;
latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
console.log(
  JSON.stringify({
    channels: count,
    publishPerSecond: n / publishSeconds,
    latencyP50Ms: at(0.5),
    latencyP99Ms: at(0.99),
  }),
);
process.exit(0);
