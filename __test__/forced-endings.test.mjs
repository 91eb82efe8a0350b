// Endings that drop a client (a slow consumer, closeTimeout, closeAll()'s
// timeout) reset the connection: the kernel discards what the client never
// took, instead of keeping it in an orphaned socket in FIN-WAIT-1 until the
// client reads it or the kernel gives up (minutes; without the reset, the
// first test's socket stays there holding 3.9 MB). The server's socket is
// looked for in /proc/net/tcp while the client still reads nothing; then
// the client sees its connection end. Linux (the table is read from /proc).
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { EventEndpoint, closeAll } from 'native-sse';
import { serve, RawClient, until, serverSocket } from './helpers.mjs';

const KIB = 1024;
const frame = 'x'.repeat(KIB - 10);

/** A server whose one endpoint is handed to `t`'s test, and a client that
 * never reads. */
async function nonReader(t, options) {
  let endpoint;
  const app = await serve((req, res) => {
    endpoint = new EventEndpoint(req, res, { keepAlive: 0, ...options });
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port);
  t.after(() => client.destroy());
  await until(() => endpoint !== undefined, 10_000, 'the endpoint');
  await client.waitFor(': ok');
  client.socket.pause();
  return { endpoint, client, port: app.port };
}

/** Sends until `enough()`: the client's socket and ours fill up. */
async function fill(endpoint, enough) {
  for (let round = 0; round < 5000 && !enough(); round++) {
    for (let i = 0; i < 64; i++) endpoint.send(frame).catch(() => {});
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The dropped client's connection ends in a reset, and the server keeps
 * nothing for it. */
async function assertReset(client, port, what) {
  const clientPort = client.socket.localPort;
  await until(() => serverSocket(port, clientPort) === null, 10_000, `${what}: the server's socket to go`);
  client.socket.resume();
  await until(() => client.closed, 10_000, `${what}: the client to see the end`);
}

const linux = existsSync('/proc/net/tcp') && !globalThis.Bun && !globalThis.Deno;

test('a slow consumer is cut off with a reset: no socket is left holding its backlog', { skip: !linux }, async (t) => {
  const { endpoint, client, port } = await nonReader(t, { maxBufferedBytes: 256 * KIB });
  await fill(endpoint, () => endpoint.closed);
  assert.equal(endpoint.closed, true, 'cut off');
  await assertReset(client, port, 'slow consumer');
});

test('closeTimeout: a client that does not take the rest in time is dropped with a reset', {
  skip: !linux,
}, async (t) => {
  const { endpoint, client, port } = await nonReader(t, { maxBufferedBytes: 64 << 20, closeTimeout: 200 });
  // Enough that the kernel's buffers cannot take it all.
  await fill(endpoint, () => endpoint.bufferedAmount > 8 << 20);
  endpoint.close();
  await assertReset(client, port, 'closeTimeout');
});

test("closeAll()'s timeout drops the clients still not done with a reset", { skip: !linux }, async (t) => {
  const { endpoint, client, port } = await nonReader(t, { maxBufferedBytes: 64 << 20, closeTimeout: 60_000 });
  await fill(endpoint, () => endpoint.bufferedAmount > 8 << 20);
  const outcome = await closeAll({ timeout: 200 });
  assert.equal(outcome.dropped, true);
  await assertReset(client, port, 'closeAll timeout');
});
