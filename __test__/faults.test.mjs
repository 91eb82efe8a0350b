// Faults: each gives exactly one close event with a meaningful wasClean and
// reason, and leaves the process healthy.
import test from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import selfsigned from 'selfsigned';
import { EventEndpoint, Channel } from 'native-sse';
import { serve, RawClient, openEndpoint, until, tick } from './helpers.mjs';

const problems = [];
process.on('unhandledRejection', (reason) => problems.push(['unhandledRejection', reason]));
process.on('uncaughtException', (err) => problems.push(['uncaughtException', err]));
const warnings = [];
process.on('warning', (warning) => warnings.push(warning));

/** Serves one endpoint to one raw client and records its close events. */
async function streamOpen(t, options) {
  const { endpoint, response, client, app } = await openEndpoint(t, options);
  const closes = [];
  endpoint.addEventListener('close', (ev) => closes.push({ wasClean: ev.wasClean, reason: ev.reason }));
  return { endpoint, response, client, closes, app };
}

async function settled(closes) {
  await until(() => closes.length > 0);
  await tick(30);
  return closes;
}

test('res.destroy(err): one close event, not clean, with the error', async (t) => {
  const { endpoint, response, closes } = await streamOpen(t);
  response.destroy(new Error('database went away'));
  assert.deepEqual(await settled(closes), [{ wasClean: false, reason: 'database went away' }]);
  assert.equal(endpoint.closed, true);
  await assert.rejects(endpoint.send('late'), { code: 'ERR_SSE_CLOSED' });
});

test('the server closing while streaming: one close event', async (t) => {
  const { endpoint, closes, app } = await streamOpen(t);
  const timer = setInterval(() => endpoint.send('tick').catch(() => {}), 2);
  t.after(() => clearInterval(timer));
  await tick(20);
  await app.close();
  assert.deepEqual(await settled(closes), [{ wasClean: true, reason: 'client disconnected' }]);
});

test('a TLS connection reset mid-stream: one close event', async (t) => {
  const { private: key, cert } = await selfsigned.generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keyType: 'ec',
  });
  let endpoint;
  const server = https.createServer({ key, cert }, (req, res) => {
    endpoint = new EventEndpoint(req, res);
    const timer = setInterval(() => endpoint.send('x'.repeat(100)).catch(() => {}), 1);
    endpoint.addEventListener('close', () => clearInterval(timer));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  // TLS over a TCP socket of our own, so that the TCP connection can be reset.
  const tcp = net.connect(server.address().port, '127.0.0.1');
  const secure = tls.connect({ socket: tcp, rejectUnauthorized: false });
  secure.on('error', () => {});
  tcp.on('error', () => {});
  await once(secure, 'secureConnect');
  secure.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  await once(secure, 'data');
  await until(() => endpoint !== undefined);
  const closes = [];
  endpoint.addEventListener('close', (ev) => closes.push({ wasClean: ev.wasClean, reason: ev.reason }));
  tcp.resetAndDestroy(); // a TCP RST under the TLS session
  await settled(closes);
  assert.equal(closes.length, 1);
  assert.equal(endpoint.closed, true);
});

test('someone ends the response behind the endpoint: no write after end', async (t) => {
  const { endpoint, response, client, closes } = await streamOpen(t);
  await endpoint.send('before');
  response.end();
  endpoint.send('after the end').catch(() => {});
  await tick(20);
  await settled(closes);
  assert.equal(closes.length, 1);
  assert.ok(!client.body.includes('after the end'));
  assert.ok(client.ended, 'the chunked body ended properly');
});

test('close() twice, and close() inside a close listener: one close event', async (t) => {
  const { endpoint, closes } = await streamOpen(t);
  endpoint.addEventListener('close', () => endpoint.close(true));
  endpoint.close();
  endpoint.close();
  assert.deepEqual(await settled(closes), [{ wasClean: true, reason: 'closed by the server' }]);
});

test('listeners that throw: the close event still reaches the others, the process lives on', async (t) => {
  const { endpoint, closes } = await streamOpen(t);
  const before = warnings.length;
  endpoint.addEventListener('close', () => {
    throw new Error('listener bug');
  });
  endpoint.addEventListener('close', async () => {
    throw new Error('async listener bug');
  });
  endpoint.addEventListener('close', { handleEvent: () => closes.push('object listener') });
  endpoint.close();
  await settled(closes);
  await tick(20);
  assert.deepEqual(closes, [{ wasClean: true, reason: 'closed by the server' }, 'object listener']);
  const reported = warnings.slice(before).map((w) => w.message);
  assert.deepEqual(reported.sort(), ['async listener bug', 'listener bug']);
  assert.ok(warnings.slice(before).every((w) => w.name === 'EventEndpointListenerError'));
});

test('removing a listener works, and adding one twice adds it once', async (t) => {
  const { endpoint } = await streamOpen(t);
  let calls = 0;
  const listener = () => calls++;
  endpoint.addEventListener('poke', listener);
  endpoint.addEventListener('poke', listener);
  endpoint.dispatchEvent(new Event('poke'));
  endpoint.removeEventListener('poke', listener);
  endpoint.dispatchEvent(new Event('poke'));
  assert.equal(calls, 1);
});

test('a subscriber whose connection fails mid-broadcast leaves the channel cleanly', async (t) => {
  const channel = new Channel();
  const endpoints = [];
  const app = await serve((req, res) => endpoints.push(channel.subscribe(new EventEndpoint(req, res)) && res));
  t.after(() => app.close());
  const clients = [RawClient.connect(app.port), RawClient.connect(app.port)];
  t.after(() => {
    for (const c of clients) c.destroy();
  });
  await until(() => channel.size === 2);
  for (let i = 0; i < 50; i++) {
    channel.broadcast(`m${i}`, { id: String(i) });
    if (i === 10) endpoints[0].destroy(new Error('reset'));
    await tick(1);
  }
  await until(() => channel.size === 1);
  await clients[1].waitFor('data: m49');
});

test('nothing above raised an unhandled rejection or an uncaught exception', () => {
  assert.deepEqual(problems, []);
});
