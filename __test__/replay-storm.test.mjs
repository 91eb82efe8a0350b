// A reconnect storm, as after a deploy: 10,000 clients resume at once from
// an id 500 events back in an in-process channel (500 × 512 B each, 2.4 GiB
// in all), with the default budget of 128 MiB. Every client must get
// exactly the 500 events it missed, once, in order; the server's resident
// memory (its peak, VmHWM) may grow by the budget plus 64 MiB at most
// beyond what the connections themselves cost (measured on the same clients
// connecting anew, in a server of its own: 10,000 connections alone grow it
// by 80-160 MiB, which is no replay's doing); the event loop's longest block
// is reported and bounded well under what the unpaced replay took (11.1 s).
// The clients run in four processes of their own (a process may hold
// 20,000 descriptors); the server in another. A client's connection the
// kernel reset before the server accepted it (the listen queue, 4096 here,
// overflows while the loop is busy with the storm) is opened again, as
// EventSource would, and counted; the server must still have opened one
// stream per client. npm run bench:storm compares
// with a replay written by hand.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from './redis-server.mjs';
import { runStorm } from './fixtures/storm.mjs';

const CLIENTS = 10_000;
const BUDGET = 128 * 1024 * 1024;
// The unpaced replay blocked the loop 11.1 s; a paced one blocks it for a
// turn's slice, the 10,000 requests arriving (and adopted) included: 0.3-1
// s here, up to 2 s on this 2-core machine with another CPU-heavy job
// beside the suite. The bound leaves room for a loaded machine and is
// still crossed by the regression it guards; the figure itself is
// npm run bench:storm's.
const LONGEST_BLOCK_MS = 5000;
// What the replays may grow the server by beyond the budget (MiB).
const SLACK = 64;

const mib = (bytes) => bytes / 2 ** 20;

/** One storm and its control; asserts that every client got its events
 * exactly, and resolves with the replays' memory (MiB) and the longest
 * event-loop block (ms). */
async function once(t, path, env, count) {
  const control = await runStorm({ env, count, resume: false });
  await control.stop();
  const { results, before, after, stop } = await runStorm({ env, count });
  await stop();
  const exact = results.reduce((n, r) => n + r.exact, 0);
  const retried = results.reduce((n, r) => n + r.retried, 0);
  const connections = mib(control.after.peakRss - control.before.rss);
  const growth = mib(after.peakRss - before.rss);
  const gib = results.reduce((n, r) => n + r.bytes, 0) / 2 ** 30;
  t.diagnostic(
    `${path}: ${exact} of ${count} clients got their 500 events exactly (${gib.toFixed(2)} GiB); server RSS ${mib(before.rss).toFixed(0)} MiB, peak growth ${growth.toFixed(0)} MiB, of which the connections alone ${connections.toFixed(0)} MiB and the replays ${(growth - connections).toFixed(0)} MiB (budget 128 MiB; the most held for clients, sampled: ${mib(after.peakHeld).toFixed(0)} MiB); longest event-loop block ${after.longestBlock.toFixed(0)} ms; descriptors at most ${after.peakDescriptors} (the connections alone: ${control.after.peakDescriptors}); budget cut-offs ${after.diagnostics.budgetCutOffs}; connections reset by the kernel before they were accepted, opened again: ${retried}`,
  );
  assert.equal(
    control.results.reduce((n, r) => n + r.exact, 0),
    count,
    'the control clients all opened',
  );
  assert.deepEqual(
    results.flatMap((r) => r.wrong),
    [],
    `clients that did not get their events exactly (streams the server ended, by reason: ${JSON.stringify(after.reasons)})`,
  );
  assert.equal(exact, count);
  // A client opened again was one the server had never accepted (see
  // storm-client.mjs): the server opened one stream per client.
  assert.equal(after.opened, count, 'streams the server opened');
  return { replays: growth - connections, block: after.longestBlock };
}

async function storm(t, path, env, count = CLIENTS) {
  env = { BUDGET: String(BUDGET), ...env };
  let { replays, block } = await once(t, path, env, count);
  // The memory figure is a difference of two peaks in two processes, and
  // moves by tens of MiB from run to run (mostly when V8 collects): a run
  // past the bound is run once more, and the second must be within it. An
  // unpaced replay (2.6 GB) fails both.
  if (replays > 128 + SLACK) ({ replays, block } = await once(t, `${path}, again`, env, count));
  assert.ok(
    replays <= 128 + SLACK,
    `the replays grew the server's RSS by ${replays.toFixed(0)} MiB (budget 128 MiB + ${SLACK} MiB)`,
  );
  assert.ok(block < LONGEST_BLOCK_MS, `the event loop was blocked ${block.toFixed(0)} ms`);
}

test('reconnect storm, direct (Rust writes to the socket): 10,000 clients resume 500 events at once; each gets them exactly, RSS grows by the budget plus 64 MiB at most, and the event loop is never blocked for long', async (t) => {
  await storm(t, 'direct (Rust writes to the socket)', { ADOPT: '0' });
});

// Adopted connections: what their writer threads have not written waits in
// the flush's blocks (64 KiB each) on their way to the writers, and only
// what a socket does not take is copied into its connection. Measured:
// 72-98 MiB for the replays, beside a busy process per core too (with a
// buffer of a few MiB per flush, every chunk copied into its connection
// and half the budget for replays it was 100-248).
test('reconnect storm, adopted (Rust owns the connection): 10,000 clients resume 500 events at once; each gets them exactly, RSS grows by the budget plus 64 MiB at most, and the event loop is never blocked for long', async (t) => {
  await storm(t, 'adopted (Rust owns the connection)', { ADOPT: '1' });
});

test('reconnect storm on the JavaScript path (NATIVE_SSE_DIRECT=0: Node writes to the socket): 2,000 clients, the same', async (t) => {
  // Node's own writes cost more per client: fewer clients keep the test
  // short, and 2,000 × 256 KB (500 MB) is still four times the budget.
  await storm(t, 'JavaScript path', { NATIVE_SSE_DIRECT: '0' }, 2000);
});

test('reconnect storm from Redis: 2,000 clients resume 500 entries at once, read in pages under the budget; the same', async (t) => {
  const redis = await Redis.start();
  t.after(() => redis.stop());
  await storm(t, 'Redis-backed channel', { REDIS_URL: redis.url, STREAM: 'storm' }, 2000);
});
