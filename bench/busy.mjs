// npm run bench:busy [-- --seconds=20 --kib=16 --only=adopted]
//
// Readers beside clients that never read, on a machine whose every core is
// busy (one busy-looping process per core, as npm run test:loaded): 300
// clients that never read and 100 that read, 16 KiB Channel broadcasts
// every 10 ms. Each path runs in a fresh server process: Node writes
// (NATIVE_SSE_DIRECT=0), Rust writes from the event loop's thread (direct),
// and Rust owns the connection (adopted). A reader must never be cut off:
// the server's own threads being late is not the client being slow. Prints
// the readers and never-readers cut off, the server's RSS growth past its
// start, and the bound: the budget plus 64 MiB.
import { fork, spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { once } from 'node:events';

const args = process.argv.slice(2);
const SECONDS = Number(args.find((a) => a.startsWith('--seconds='))?.slice(10) ?? 20);
const READERS = 100;
const NEVER = 300;
const KIB = Number(args.find((a) => a.startsWith('--kib='))?.slice(6) ?? 16);
const BUDGET = 128 << 20;
const MAX_BUFFERED = 1 << 20;
const MiB = 1 << 20;
const ONLY = args.find((a) => a.startsWith('--only='))?.slice(7);

if (process.argv[2] === 'server') {
  const { EventEndpoint, Channel, setMemoryBudget, diagnostics } = await import('native-sse');
  const adopt = process.argv[3] === 'adopted';
  setMemoryBudget(BUDGET);
  const channel = new Channel({ historySize: 0 });
  const cutOff = { '/reader': 0, '/never': 0 };
  const server = http.createServer((req, res) => {
    const endpoint = new EventEndpoint(req, res, { keepAlive: 0, maxBufferedBytes: MAX_BUFFERED, adopt });
    endpoint.addEventListener('close', (e) => {
      if (e.reason === 'slow consumer') cutOff[req.url]++;
    });
    channel.subscribe(endpoint);
  });
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () =>
    process.send({ port: server.address().port, rss: process.memoryUsage.rss() }),
  );
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 50);
  process.on('message', async ({ seconds }) => {
    const payload = 'p'.repeat(KIB * 1024 - 40);
    const base = process.memoryUsage.rss();
    const end = Date.now() + seconds * 1000;
    let n = 0;
    while (Date.now() < end) {
      channel.broadcast(`${n++} ${payload}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    clearInterval(sampler);
    process.send({
      base,
      peak,
      cutOff,
      broadcasts: n,
      adopted: diagnostics().adopted,
      budgetCutOffs: diagnostics().budgetCutOffs,
      writerWaitMs: diagnostics().writerWaitMs,
    });
  });
} else {
  // (fork() cannot run a script given inline: it took '-e' for a file and
  // the busy loop for its argument, and each exited at once.)
  const busy = Array.from({ length: os.availableParallelism() }, () =>
    spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }),
  );
  await Promise.all(busy.map((child) => once(child, 'spawn')));
  const rows = [];
  try {
    for (const [name, env, mode] of [
      ['Node writes (NATIVE_SSE_DIRECT=0)', { NATIVE_SSE_DIRECT: '0' }, 'direct'],
      ['direct (Rust writes on the loop thread)', {}, 'direct'],
      ['adopted (Rust owns the connection)', {}, 'adopted'],
    ]) {
      if (ONLY !== undefined && !name.startsWith(ONLY)) continue;
      rows.push([name, await run(env, mode)]);
    }
  } finally {
    for (const child of busy) child.kill('SIGKILL');
  }
  console.log(
    `\n${NEVER} never-readers + ${READERS} readers, ${KIB} KiB broadcasts every 10 ms for ${SECONDS} s, beside ${busy.length} busy processes\n`,
  );
  console.log(
    '| path | adopted | broadcasts (MiB each reader) | least a reader got (MiB) | readers cut off | never-readers cut off | of them by the budget | the event loop waited for writers (ms) | RSS growth (MiB) | bound (MiB) |',
  );
  console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const [name, r] of rows)
    console.log(
      `| ${name} | ${r.adopted} | ${((r.broadcasts * KIB * 1024) / MiB).toFixed(0)} | ${(r.least / MiB).toFixed(0)} | ${r.cutOff['/reader']} of ${READERS} | ${r.cutOff['/never']} of ${NEVER} | ${r.budgetCutOffs} | ${r.writerWaitMs.toFixed(0)} | ${((r.peak - r.base) / MiB).toFixed(0)} | ${(BUDGET + 64 * MiB) / MiB} |`,
    );
}

async function run(env, mode) {
  const server = fork(new URL(import.meta.url).pathname, ['server', mode, `--kib=${KIB}`], {
    env: { ...process.env, ...env },
  });
  const [{ port }] = await once(server, 'message');
  const sockets = [];
  const readers = [];
  const open = (path, read) => {
    const socket = net.connect(port, '127.0.0.1', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`),
    );
    socket.on('error', () => {});
    if (read) {
      const reader = { bytes: 0 };
      readers.push(reader);
      socket.on('data', (chunk) => (reader.bytes += chunk.length));
    } else socket.pause();
    sockets.push(socket);
  };
  for (let i = 0; i < READERS; i++) open('/reader', true);
  for (let i = 0; i < NEVER; i++) open('/never', false);
  await new Promise((resolve) => setTimeout(resolve, 500));
  server.send({ seconds: SECONDS });
  const [result] = await once(server, 'message');
  // What the readers got by the last broadcast, as they go on reading.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  result.least = Math.min(...readers.map((r) => r.bytes));
  for (const socket of sockets) socket.destroy();
  server.kill();
  await once(server, 'exit');
  return result;
}
