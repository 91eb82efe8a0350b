// Stop tokens without Redis: a key set by the application lets every process
// of a deployment honour the tokens of the others. (Processes sharing a
// Redis-backed Channel share a key by themselves: redis-guarantees.test.mjs.)
// This file sets the key of its own process, so it runs on its own.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { EventEndpoint, configureStopTokens } from 'native-sse';
import { serve, until, tallyEvents } from './helpers.mjs';

const KEY = 'a key of the deployment, 32 bytes or more';

/** A process that stops its one client with close(true), under `key`. */
async function stoppingProcess(t, key) {
  const code = `
    const http = require('node:http');
    const { EventEndpoint, configureStopTokens } = require(${JSON.stringify(new URL('../index.js', import.meta.url).pathname)});
    if (process.env.KEY) configureStopTokens({ key: process.env.KEY });
    const server = http.createServer((req, res) => {
      const endpoint = new EventEndpoint(req, res);
      setTimeout(() => endpoint.close(true), 10);
    }).listen(0, '127.0.0.1', () => console.log(server.address().port));
  `;
  const child = spawn(process.execPath, ['-e', code], {
    env: { ...process.env, KEY: key ?? '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => child.kill());
  const [line] = await once(child.stdout, 'data');
  return `http://127.0.0.1:${String(line).trim()}`;
}

async function tokenFrom(url) {
  const tally = tallyEvents(url);
  await until(() => tally.ended, 5000, 'the stream to end');
  const stop = tally.named.find((e) => e.type === 'native-sse:stop');
  assert.ok(stop, 'the farewell frame came');
  return stop.id;
}

async function statusFor(port, token) {
  const tally = tallyEvents(`http://127.0.0.1:${port}/`, { headers: { 'Last-Event-ID': token } });
  await until(() => tally.status !== 0, 5000, 'the answer');
  tally.close();
  return tally.status;
}

test('configureStopTokens checks its options, naming them', () => {
  assert.throws(() => configureStopTokens(), /"options" argument must be an object/);
  assert.throws(
    () => configureStopTokens({ key: 'short' }),
    /"options.key" argument must be at least 32 bytes long, received 5/,
  );
  // configureStopTokens({ key: process.env.SSE_STOP_KEY }) with the variable unset.
  assert.throws(() => configureStopTokens({ key: undefined }), {
    name: 'TypeError',
    message: /"options.key" argument is undefined/,
  });
  assert.throws(() => configureStopTokens({ key: '' }), {
    name: 'TypeError',
    message: /"options.key" argument must be at least 32 bytes long, received 0/,
  });
  assert.throws(() => configureStopTokens({ key: new Uint8Array(31) }), {
    name: 'TypeError',
    message: /"options.key" .* received 31/,
  });
  assert.throws(() => configureStopTokens({ key: 42 }), /"options.key" argument must be a string or a Uint8Array/);
  assert.throws(() => configureStopTokens({ maxAge: 0 }), /"options.maxAge" argument must be a positive number/);
  assert.throws(() => configureStopTokens({ maxAge: Infinity }), TypeError);
});

test('a token issued by another process under the same key gets 204; under another key, 200', async (t) => {
  const app = await serve((req, res) => new EventEndpoint(req, res));
  t.after(() => app.close());
  const stranger = await tokenFrom(await stoppingProcess(t, undefined));
  assert.equal(await statusFor(app.port, stranger), 200, 'before the key is set, only its own process knows it');
  configureStopTokens({ key: Buffer.from(KEY) });
  const sibling = await tokenFrom(await stoppingProcess(t, KEY));
  assert.equal(await statusFor(app.port, sibling), 204);
  assert.equal(await statusFor(app.port, stranger), 200);
  const other = await tokenFrom(await stoppingProcess(t, `${KEY}, but another`));
  assert.equal(await statusFor(app.port, other), 200);
});
