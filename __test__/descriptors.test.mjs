// The direct path holds two descriptors per stream (Node's and Rust's
// duplicate). At the process's descriptor limit the duplicate fails
// cleanly: the stream stays on the JavaScript path and is served as well.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { until, RawClient, parseEventStream } from './helpers.mjs';

const LIMIT = Number(process.env.FD_LIMIT_TEST ?? 80);

test(`at the descriptor limit (ulimit -n ${LIMIT}) a stream whose duplicate fails stays on the JavaScript path, and every accepted client is served`, {
  skip: process.platform === 'win32',
}, async (t) => {
  const child = spawn(
    'bash',
    ['-c', `ulimit -n ${LIMIT} && exec "${process.execPath}" __test__/fixtures/fd-limit-app.mjs`],
    {
      cwd: new URL('..', import.meta.url),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (data) => (stderr += data));
  t.after(() => child.kill('SIGKILL'));
  const [line] = await once(child.stdout, 'data');
  const port = Number(new URL(String(line).trim()).port);
  const clients = [];
  t.after(() => {
    for (const c of clients) c.destroy();
  });
  const figuresOf = (c) => {
    const event = parseEventStream(c.body).events.find((e) => e.type === 'figures');
    return event && JSON.parse(event.data);
  };
  /** Connects one more client; resolves to whether it was served. */
  const connect = async () => {
    const client = RawClient.connect(port);
    clients.push(client);
    return until(() => client.closed || figuresOf(client) !== undefined, 3000).then(
      () => !client.closed,
      () => false,
    );
  };
  // One at a time, until the server takes no more.
  for (let i = 0; i < LIMIT && (await connect()); i++);
  const atLimit = clients.filter((c) => figuresOf(c) !== undefined && !c.closed).length;
  // Whether some stream was served on the JavaScript path because its
  // duplicate could not be made. At the limit that depends on whether one
  // descriptor was left over; if none was, the server gives up one at a
  // time (SIGUSR2) until a connection gets the last one.
  const fellBack = () =>
    clients.some(
      (c) => !c.closed && figuresOf(c) !== undefined && figuresOf(c).directSockets < figuresOf(c).openStreams,
    );
  for (let round = 0; round < 4 && !fellBack(); round++) {
    child.kill('SIGUSR2');
    await connect();
  }
  const served = clients.filter((c) => !c.closed && figuresOf(c) !== undefined);
  const last = served.map(figuresOf).reduce((a, b) => (b.openStreams > a.openStreams ? b : a));
  t.diagnostic(
    `${atLimit} streams served under ulimit -n ${LIMIT}; at most ${last.openStreams} open, ${last.directSockets} of them written by Rust`,
  );
  assert.ok(atLimit >= 20, `${atLimit} streams`);
  assert.ok(last.directSockets > 0, 'streams on the direct path');
  assert.ok(fellBack(), 'a stream whose duplicate failed stayed on the JavaScript path');
  // Every served client, direct or not, goes on getting its ticks, in order.
  const ticks = (c) =>
    parseEventStream(c.body)
      .events.filter((e) => e.type === 'message' && e.data.startsWith('tick'))
      .map((e) => Number(e.data.slice(5)));
  const before = served.map((c) => ticks(c).at(-1) ?? 0);
  await until(
    () => served.every((c, i) => (ticks(c).at(-1) ?? 0) >= before[i] + 5),
    10_000,
    'five more ticks on every stream',
  );
  for (const c of served) {
    const seen = ticks(c);
    for (let i = 1; i < seen.length; i++) assert.equal(seen[i], seen[i - 1] + 1, 'ticks in order, none missing');
  }
  assert.equal(child.exitCode, null, 'the server is alive');
  assert.doesNotMatch(stderr, /Error|panick/);
});
