// The Next.js App Router example (examples/nextjs, docs/nextjs.md), as its
// guide says to run it: `next build`, then `next start`; an EventSource
// reads the route handler's ticks, and a fetch that sends Last-Event-ID
// resumes after it. next, react and react-dom are installed by `.ci/run`
// (npm install --no-save), not by every developer's `npm ci`.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { needs, parseEventStream, until } from './helpers.mjs';
import { freePort } from './redis-server.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const example = join(root, 'examples', 'nextjs');
const next = join(root, 'node_modules', 'next', 'dist', 'bin', 'next');
const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1', NO_COLOR: '1' };

needs(
  'next',
  existsSync(next),
  () => {
    test('the Next.js example builds, and its route handler streams and resumes', async (t) => {
      rmSync(join(example, '.next'), { recursive: true, force: true });
      // native-sse installed into the example as npm would install it: the
      // package's files and this machine's addon (a link to the project
      // would lead Next.js's file tracing round in a circle).
      const installed = join(example, 'node_modules', 'native-sse');
      rmSync(join(example, 'node_modules'), { recursive: true, force: true });
      const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
      const addons = readdirSync(root).filter((name) => name.endsWith('.node'));
      for (const file of [...manifest.files, 'package.json', ...addons]) {
        cpSync(join(root, file), join(installed, file), { recursive: true });
      }
      t.after(() => {
        rmSync(join(example, '.next'), { recursive: true, force: true });
        rmSync(join(example, 'node_modules'), { recursive: true, force: true });
      });
      // Built as a user builds it: with native-sse left to Node
      // (serverExternalPackages), the .node file is not bundled.
      const build = spawnSync(process.execPath, [next, 'build'], {
        cwd: example,
        env,
        encoding: 'utf8',
        timeout: 600_000,
      });
      assert.equal(build.status, 0, `next build: ${build.stdout}\n${build.stderr}`);

      const port = await freePort();
      const server = spawn(process.execPath, [next, 'start', '-H', '127.0.0.1', '-p', String(port)], {
        cwd: example,
        env: { ...env, TICK_MS: '25' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      server.stderr.on('data', (data) => (stderr += data));
      server.stdout.resume();
      t.after(() => server.kill());
      const url = `http://127.0.0.1:${port}/api/events`;
      await until(
        () =>
          fetch(url, { method: 'HEAD' }).then(
            (response) => response.ok,
            () => false,
          ),
        60_000,
        'next start to answer',
      );

      // An EventSource gets ticks, each with its id, in order.
      const source = new EventSource(url);
      const ticks = [];
      source.onmessage = (event) => ticks.push({ id: event.lastEventId, n: JSON.parse(event.data).n });
      try {
        await until(() => ticks.length >= 3, 20_000, 'three ticks');
      } finally {
        source.close();
      }
      for (const [i, tick] of ticks.entries()) {
        assert.equal(tick.id, String(tick.n));
        if (i > 0) assert.equal(tick.n, ticks[i - 1].n + 1, 'in order, none missed');
      }

      // A client that comes back with Last-Event-ID resumes right after it.
      const after = ticks[1].n;
      const controller = new AbortController();
      const response = await fetch(url, { headers: { 'Last-Event-ID': String(after) }, signal: controller.signal });
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type'), /^text\/event-stream/);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      while (parseEventStream(text).events.length < 2) text += (await reader.read()).value;
      controller.abort();
      const resumed = parseEventStream(text).events.map((event) => JSON.parse(event.data).n);
      assert.deepEqual(resumed.slice(0, 2), [after + 1, after + 2]);
      assert.equal(stderr, '', 'next start wrote nothing to stderr');
    });
  },
  'npm install --no-save next@15 react@19 react-dom@19',
);
