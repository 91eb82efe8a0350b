// The demo of `npm start` starts, prints its URL, serves its page and streams.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { EventSource } from 'eventsource';
import { until } from './helpers.mjs';

test('the demo serves a page and a live event stream', async (t) => {
  const demo = spawn(process.execPath, ['examples/demo/server.mjs'], {
    cwd: new URL('..', import.meta.url),
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => demo.kill());
  const [line] = await once(demo.stdout, 'data');
  const url = /http:\/\/127\.0\.0\.1:\d+\//.exec(String(line))?.[0];
  assert.ok(url, `the demo prints its URL: ${line}`);

  const page = await fetch(url);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /new EventSource\('\/events'\)/);

  const es = new EventSource(new URL('/events', url));
  t.after(() => es.close());
  const got = { welcome: [], message: [] };
  es.addEventListener('welcome', (e) => got.welcome.push(e.data));
  es.onmessage = (e) => got.message.push([e.lastEventId, e.data]);
  await until(() => got.message.length >= 2, 5000, 'two clock ticks');
  assert.match(got.welcome[0], /visitor #1/);
  assert.deepEqual(got.message.map(([id]) => id), ['1', '2']);
  assert.match(got.message[0][1], /^\d\d:\d\d:\d\d$/);
});
