// The direct path holds two descriptors per stream (Node's and Rust's
// duplicate). At the process's descriptor limit the duplicate fails
// cleanly: the stream stays on the JavaScript path and is served as well.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { until, RawClient, parseEventStream } from './helpers.mjs';

test('at the descriptor limit (ulimit -n 80) streams stay on the JavaScript path and every accepted client is served', { skip: process.platform === 'win32' }, async (t) => {
  const child = spawn('bash', ['-c', `ulimit -n 80 && exec "${process.execPath}" __test__/fixtures/fd-limit-app.mjs`], {
    cwd: new URL('..', import.meta.url),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (data) => (stderr += data));
  t.after(() => child.kill('SIGKILL'));
  const [line] = await once(child.stdout, 'data');
  const port = Number(new URL(String(line).trim()).port);
  const clients = [];
  t.after(() => clients.forEach((c) => c.destroy()));
  // One at a time, until the server takes no more (or 80 are open).
  for (let i = 0; i < 80; i++) {
    const client = RawClient.connect(port);
    clients.push(client);
    const served = await until(() => client.closed || parseEventStream(client.body).events.some((e) => e.type === 'figures'), 3000).then(
      () => !client.closed,
      () => false,
    );
    if (!served) break;
  }
  const served = clients.filter((c) => !c.closed && c.head?.status === 200);
  const figures = served.map((c) => JSON.parse(parseEventStream(c.body).events.find((e) => e.type === 'figures').data));
  const last = figures.at(-1);
  t.diagnostic(`${served.length} streams served under ulimit -n 80; Rust wrote to ${last.directSockets} of them`);
  assert.ok(served.length >= 20, `${served.length} streams`);
  assert.ok(last.directSockets > 0, 'some streams on the direct path');
  assert.ok(last.directSockets < last.openStreams, 'some stayed on the JavaScript path: their duplicate failed');
  // Every served client, direct or not, goes on getting its ticks, in order.
  const ticks = (c) => parseEventStream(c.body).events.filter((e) => e.type === 'message' && e.data.startsWith('tick')).map((e) => Number(e.data.slice(5)));
  const before = served.map((c) => ticks(c).at(-1) ?? 0);
  await until(() => served.every((c, i) => (ticks(c).at(-1) ?? 0) >= before[i] + 5), 10_000, 'five more ticks on every stream');
  for (const c of served) {
    const seen = ticks(c);
    seen.forEach((n, i) => i === 0 || assert.equal(n, seen[i - 1] + 1, 'ticks in order, none missing'));
  }
  assert.equal(child.exitCode, null, 'the server is alive');
  assert.doesNotMatch(stderr, /Error|panick/);
});
