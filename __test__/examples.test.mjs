// The framework recipes of examples/frameworks, each run as its README says
// (its own process, its own framework) and read by real clients: an
// EventSource gets the welcome and the first ticks, in order; a fetch that
// sends Last-Event-ID resumes after it. Behind `compression`, gzip and br
// each deliver every tick as it is sent. Bun and Deno run theirs with the
// binaries `.ci/run` installs.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { until, parseEventStream, needs, startProgram } from './helpers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));

/** Starts an example with a fast ticker; resolves to its URL. Whatever it
 * writes to stderr fails the test. */
async function start(t, command, args) {
  const { url, stderr } = await startProgram(t, command, args, { TICK_MS: '25', NO_COLOR: '1' });
  t.after(() => assert.equal(stderr(), '', 'the example wrote nothing to stderr'));
  return url;
}

/** An EventSource reads the welcome and ticks 1 to 3. */
async function readWithEventSource(url) {
  const source = new EventSource(url);
  const seen = [];
  source.addEventListener('welcome', (e) => seen.push(`welcome: ${e.data}`));
  source.addEventListener('message', (e) => seen.push(`${e.lastEventId}: ${e.data}`));
  try {
    await until(() => seen.length >= 4, 10_000, 'the welcome and three ticks');
  } finally {
    source.close();
  }
  assert.deepEqual(seen.slice(0, 4), ['welcome: resuming after 0', '1: tick 1', '2: tick 2', '3: tick 3']);
}

/** A fetch that sends Last-Event-ID: 3 resumes with tick 4; returns the
 * response's Content-Encoding. */
async function resumeWithFetch(url, headers = {}) {
  const abort = new AbortController();
  const response = await fetch(url, { headers: { 'last-event-id': '3', ...headers }, signal: abort.signal });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'text/event-stream');
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  try {
    await until(
      async () => {
        const { value, done } = await reader.read();
        if (value) text += value;
        return done || text.includes('data: tick 5\n\n');
      },
      10_000,
      'ticks 4 and 5',
    );
  } finally {
    abort.abort();
  }
  const events = parseEventStream(text).events.map((e) => `${e.type} ${e.lastEventId}: ${e.data}`);
  assert.deepEqual(events.slice(0, 3), ['welcome : resuming after 3', 'message 4: tick 4', 'message 5: tick 5']);
  return response.headers.get('content-encoding');
}

const node = (file) => [process.execPath, [file]];

for (const [name, file] of [
  ['Express 5', 'examples/frameworks/express.mjs'],
  ['Fastify 5 (reply.hijack())', 'examples/frameworks/fastify.mjs'],
  ['Koa 3 (ctx.respond = false)', 'examples/frameworks/koa.mjs'],
  ['Hono on @hono/node-server', 'examples/frameworks/hono.mjs'],
]) {
  test(`the ${name} example streams, and resumes after Last-Event-ID`, async (t) => {
    const url = await start(t, ...node(file));
    await readWithEventSource(url);
    assert.equal(await resumeWithFetch(url), null);
  });
}

test('the Express example behind compression: gzip and br deliver each event as it is sent', async (t) => {
  const url = (await start(t, ...node('examples/frameworks/express.mjs'))).replace('/events', '/compressed/events');
  await readWithEventSource(url);
  for (const encoding of ['gzip', 'br']) {
    assert.equal(await resumeWithFetch(url, { 'accept-encoding': encoding }), encoding);
  }
});

test('the NestJS example, compiled by tsc as its README says, streams and resumes', { timeout: 60_000 }, async (t) => {
  execFileSync(process.execPath, [bin('tsc'), '-p', 'examples/frameworks/nestjs'], { cwd: root, stdio: 'inherit' });
  const url = await start(t, ...node('examples/frameworks/nestjs/dist/main.js'));
  await readWithEventSource(url);
  assert.equal(await resumeWithFetch(url), null);
});

needs(
  'bun',
  existsSync(bin('bun')),
  () => {
    test('the Bun.serve example streams, and resumes after Last-Event-ID', async (t) => {
      const url = await start(t, bin('bun'), ['examples/frameworks/bun.mjs']);
      await readWithEventSource(url);
      assert.equal(await resumeWithFetch(url), null);
    });
  },
  'npm install --no-save bun',
);

needs(
  'deno',
  existsSync(bin('deno')),
  () => {
    test('the Deno.serve example, with the least permissions, streams and resumes', async (t) => {
      const url = await start(t, bin('deno'), [
        'run',
        '--no-prompt',
        '--allow-net=127.0.0.1',
        '--allow-ffi',
        '--allow-read=.,/usr/bin/ldd',
        '--allow-env=NAPI_RS_*,NATIVE_SSE_*,PORT,TICK_MS',
        'examples/frameworks/deno.mjs',
      ]);
      await readWithEventSource(url);
      assert.equal(await resumeWithFetch(url), null);
    });
  },
  'npm install --no-save deno',
);
