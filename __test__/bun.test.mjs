// Under Bun: the portable suites (helpers.mjs) pass under `bun test`, and
// the Bun.serve example keeps an idle stream open for 30 s, three times
// Bun's 10 s idle timeout, with default options everywhere: under Bun the
// default keepAlive is 5 s (Bun drops a request after 8.5 to 12 s of
// silence). Bun comes from the `bun` npm package (its
// binary ships in a platform package), which `.ci/run` installs; without it
// a notice says the tests did not run, and under CI they fail.
import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { needs, tick, parseEventStream, startProgram, PORTABLE_SUITES } from './helpers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const bun = fileURLToPath(new URL('../node_modules/.bin/bun', import.meta.url));

needs(
  'bun',
  existsSync(bun),
  () => {
    test('under Bun, the portable suites pass (bun test)', { timeout: 300_000 }, (t) => {
      const run = spawnSync(bun, ['test', '--timeout', '120000', ...PORTABLE_SUITES], {
        cwd: root,
        encoding: 'utf8',
        timeout: 280_000,
      });
      const output = run.stdout + run.stderr;
      const failures = output.split('\n').filter((line) => line.startsWith('(fail)'));
      assert.deepEqual(failures, [], output.slice(-4000));
      assert.equal(run.status, 0, output.slice(-4000));
      const ran = /Ran (\d+) tests across (\d+) files/.exec(output);
      assert.ok(ran, output.slice(-2000));
      assert.equal(Number(ran[2]), PORTABLE_SUITES.length, 'every suite ran');
      t.diagnostic(`bun ${spawnSync(bun, ['--version'], { encoding: 'utf8' }).stdout.trim()}: ${ran[1]} tests passed`);
    });

    test('under Bun.serve with default options, an idle stream stays open for 30 s', { timeout: 60_000 }, async (t) => {
      // The example with a ticker that never ticks in the test's time.
      const { url } = await startProgram(t, bun, ['examples/frameworks/bun.mjs'], { TICK_MS: '3600000' });
      let text = '';
      let ended = null;
      const request = http.get(url, (res) => {
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => (ended ??= 'ended'));
        res.on('error', (err) => (ended ??= String(err)));
      });
      request.on('error', (err) => (ended ??= String(err)));
      t.after(() => request.destroy());
      const started = performance.now();
      while (performance.now() - started < 30_000 && ended === null) await tick(250);
      assert.equal(ended, null, `the stream ended after ${(performance.now() - started) / 1000} s`);
      assert.deepEqual(
        parseEventStream(text).events.map((e) => e.data),
        ['resuming after 0'],
      );
      const comments = text.split('\n').filter((line) => line === ':').length;
      assert.ok(comments >= 3, `keep-alive comments kept it open: ${comments} in 30 s`);
    });
  },
  'npm install --no-save bun',
);
