// npm run bench:memory [-- --seconds=20 --kib=1 --never]
//
// Memory under clients that stop reading, the load that once pinned whole
// flushes: 1,000 readers plus 200 clients that stop reading one every
// 50 ms, under 1 KiB Channel broadcasts at 400/s. Run twice in fresh
// processes, with the readers alone and with the stoppers too, and prints
// the server's peak RSS for both, against the bound the README states:
// readers-only + 200 × (maxBufferedBytes + 1 MiB).
import { fork } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';

const args = process.argv.slice(2);
const SECONDS = Number(args.find((a) => a.startsWith('--seconds='))?.slice(10) ?? 20);
// The size of each broadcast. At 1 KiB a client that stops reading takes
// longer than a run to fill this machine's socket buffers (tcp_rmem reaches
// 32 MiB); larger events fill them within seconds, which is the adversity.
const KIB = Number(args.find((a) => a.startsWith('--kib='))?.slice(6) ?? 1);
// --never: the 200 join one every 50 ms and never read at all (their
// sockets stay small and fill within a second), instead of reading first
// and then stopping.
const NEVER = args.includes('--never');
const READERS = 1000;
const STOPPERS = 200;
const MAX_BUFFERED = 4 << 20;
const MiB = 1 << 20;

if (process.argv[2] === 'server') {
  // The server under test: a Channel, 1 KiB broadcasts at 400/s.
  const { EventEndpoint, Channel } = await import('native-sse');
  const channel = new Channel({ historySize: 0 });
  // Slow-consumer cut-offs, of readers and of the others.
  const cutOff = { '/reader': 0, '/other': 0 };
  const server = http.createServer((req, res) => {
    const endpoint = new EventEndpoint(req, res, { keepAlive: 0, maxBufferedBytes: MAX_BUFFERED });
    endpoint.addEventListener('close', (e) => e.reason === 'slow consumer' && cutOff[req.url]++);
    channel.subscribe(endpoint);
  });
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => process.send({ port: server.address().port }));
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 50);
  process.on('message', async ({ seconds, kib }) => {
    const payload = 'p'.repeat(kib * 1024 - 40);
    const end = Date.now() + seconds * 1000;
    let n = 0;
    while (Date.now() < end) {
      channel.broadcast(`${n++} ${payload}`);
      await new Promise((resolve) => setTimeout(resolve, 2.5));
    }
    clearInterval(sampler);
    process.send({ peakRss: peak, cutOff, broadcasts: n });
  });
} else {
  /** One run: the readers, and the stoppers if asked. */
  async function run(withStoppers) {
    const server = fork(new URL(import.meta.url).pathname, ['server']);
    const [{ port }] = await once(server, 'message');
    const sockets = [];
    const open = (path = '/reader') => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
      socket.on('data', () => {});
      sockets.push(socket);
      return socket;
    };
    for (let i = 0; i < READERS; i++) open();
    const stoppers = withStoppers && !NEVER ? Array.from({ length: STOPPERS }, () => open('/other')) : [];
    await new Promise((resolve) => setTimeout(resolve, 1000));
    server.send({ seconds: SECONDS, kib: KIB });
    // One stops reading (or joins, never to read) every 50 ms.
    stoppers.forEach((socket, i) => {
      setTimeout(() => socket.pause(), 50 * (i + 1));
    });
    if (withStoppers && NEVER) {
      for (let i = 0; i < STOPPERS; i++) {
        setTimeout(
          () => {
            const socket = net.connect(port, '127.0.0.1');
            socket.on('error', () => {});
            socket.write('GET /other HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
            socket.pause();
            sockets.push(socket);
          },
          50 * (i + 1),
        );
      }
    }
    const [result] = await once(server, 'message');
    for (const socket of sockets) socket.destroy();
    server.kill();
    return result;
  }
  const alone = await run(false);
  const both = await run(true);
  const bound = alone.peakRss + STOPPERS * (MAX_BUFFERED + MiB);
  console.log(`${READERS} readers, ${KIB} KiB Channel broadcasts at 400/s for ${SECONDS} s; peak server RSS:`);
  console.log('| run | peak RSS (MiB) | readers cut off | others cut off |');
  console.log('|---|--:|--:|--:|');
  console.log(`| readers only | ${(alone.peakRss / MiB).toFixed(0)} | ${alone.cutOff['/reader']} | – |`);
  console.log(
    `| + ${STOPPERS} clients that ${NEVER ? 'never read, joining' : 'stop reading,'} one every 50 ms | ${(both.peakRss / MiB).toFixed(0)} | ${both.cutOff['/reader']} | ${both.cutOff['/other']} of ${STOPPERS} |`,
  );
  console.log(`| bound: readers only + ${STOPPERS} × (maxBufferedBytes + 1 MiB) | ${(bound / MiB).toFixed(0)} | | |`);
  if (both.peakRss > bound) {
    console.log('OVER THE BOUND');
    process.exitCode = 1;
  }
}
