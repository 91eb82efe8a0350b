// The load: raw sockets on 127.0.0.1 that count bytes and SSE frames, in a
// process of their own. Driven by run.mjs over IPC.
import net from 'node:net';
import http2 from 'node:http2';

const { port, clients, frames, mode, h2, latency, timeoutMs } = JSON.parse(process.argv[2]);
const LF = 10;

/** Publish-to-delivery latencies (ms), from the timestamp each frame carries. */
const latencies = [];

class Counter {
  frames = -1; // the opening comment block is not an event
  bytes = 0;
  lastByte = 0;
  opened = false;

  constructor(socket) {
    this.socket = socket;
  }

  /** Counts frame ends ("\n\n"), also across packet boundaries. */
  take(data) {
    if (latency) this.stamp(data);
    this.bytes += data.length;
    const prev = this.lastByte;
    for (let at = data.indexOf(LF); at !== -1; at = data.indexOf(LF, at + 1)) {
      if ((at === 0 ? prev : data[at - 1]) === LF) this.frames++;
    }
    this.lastByte = data[data.length - 1];
    if (!this.opened && this.frames >= 0) this.opened = true;
  }

  text = '';

  stamp(data) {
    const now = performance.timeOrigin + performance.now();
    const frames = (this.text + data.toString('latin1')).split('\n\n');
    this.text = frames.pop();
    for (const frame of frames) {
      const at = frame.indexOf('data: ');
      if (at >= 0) latencies.push(now - parseFloat(frame.slice(at + 6)));
    }
  }
}

const counters = [];

/** An HTTP/2 client: a session (a connection) of its own, one stream. */
function connectH2() {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  const stream = session.request({ ':path': '/events', accept: 'text/event-stream' });
  stream.on('error', () => {});
  const counter = new Counter(session);
  stream.on('data', (data) => counter.take(data));
  counters.push(counter);
  return counter;
}

function connect() {
  if (h2) return connectH2();
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  const counter = new Counter(socket);
  socket.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
  if (mode === 'stall') {
    // Never read: what the server sends piles up in the socket buffers.
    socket.pause();
  } else {
    socket.on('data', (data) => counter.take(data));
  }
  socket.on('error', () => {});
  counters.push(counter);
  return counter;
}

const deadline = Date.now() + timeoutMs;
const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(predicate, what) {
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`client timed out waiting for ${what}`);
    await wait(2);
  }
}

// Connect in batches, so that the server's accept queue never overflows.
for (let i = 0; i < clients; i += 250) {
  const batch = [];
  for (let j = i; j < Math.min(clients, i + 250); j++) batch.push(connect());
  if (mode !== 'stall') await waitFor(() => batch.every((c) => c.opened), 'connections to open');
}
if (mode === 'stall') await wait(200);
process.send({ type: 'ready' });

process.on('message', async (message) => {
  if (message.type === 'go') {
    const start = process.hrtime.bigint();
    try {
      await waitFor(() => counters.every((c) => c.frames >= frames), `${frames} frames on each of ${clients} clients`);
      const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
      const total = counters.reduce((sum, c) => sum + c.frames, 0);
      process.send({ type: 'done', elapsedMs, frames: total, latencies: latency ? latencies : undefined });
    } catch (err) {
      process.send({ type: 'error', message: err.message });
    }
  } else if (message.type === 'exit') {
    for (const c of counters) c.socket.destroy();
    process.exit(0);
  }
});
