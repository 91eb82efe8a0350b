// The memory budget of a thread's streams: past it, the clients furthest
// behind are cut off first, never the ones keeping up. This file sets the
// budget of its own process, so it runs on its own.
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { EventEndpoint, Channel, diagnostics, setMemoryBudget } from 'native-sse';
import { serve, until, tick } from './helpers.mjs';

test('past the budget the clients that do not read are cut off, the readers never', async (t) => {
  const MiB = 1 << 20;
  setMemoryBudget(8 * MiB);
  t.after(() => setMemoryBudget(Infinity));
  assert.throws(() => setMemoryBudget(-1), /"bytes" argument/);
  const channel = new Channel({ historySize: 0 });
  const reasons = new Map();
  const app = await serve((req, res) => {
    const endpoint = new EventEndpoint(req, res, { keepAlive: 0, maxBufferedBytes: 6 * MiB });
    endpoint.addEventListener('close', (e) => reasons.set(req.url, e.reason));
    channel.subscribe(endpoint);
  });
  t.after(() => app.close());
  const connect = (path, read) => {
    const socket = net.connect(app.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    if (read) socket.on('data', () => {});
    else socket.pause(); // never reads
    t.after(() => socket.destroy());
    return socket;
  };
  for (let i = 0; i < 10; i++) connect(`/reader${i}`, true);
  for (let i = 0; i < 10; i++) connect(`/idle${i}`, false);
  await until(() => channel.size === 20, 5000, 'the subscriptions');
  const payload = 'b'.repeat(16 * 1024);
  let peak = 0;
  for (let i = 0; i < 2000 && [...reasons.keys()].filter((k) => k.startsWith('/idle')).length < 10; i++) {
    channel.broadcast(payload);
    await tick(2);
    peak = Math.max(peak, diagnostics().heldBytes);
  }
  await until(
    () => [...reasons.keys()].filter((k) => k.startsWith('/idle')).length === 10,
    10_000,
    'every idle client cut off',
  );
  for (let i = 0; i < 10; i++) assert.equal(reasons.get(`/idle${i}`), 'slow consumer');
  for (let i = 0; i < 10; i++) assert.equal(reasons.has(`/reader${i}`), false, `reader ${i} is still served`);
  // Each cut-off client held at most its cap, and the budget was overshot by
  // at most about one turn's broadcasts.
  assert.ok(peak <= 8 * MiB + 2 * MiB, `peak ${(peak / MiB).toFixed(1)} MiB held`);
  assert.equal(diagnostics().memoryBudget, 8 * MiB);
});
