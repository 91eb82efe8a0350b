// Under Deno: the portable suites (helpers.mjs) pass under `deno test`, and
// fetch-style streams with Deno.serve deliver, end cleanly, see a client
// that leaves, and print no warning. Deno comes from the `deno`
// npm package (its binary ships in a platform package), which `.ci/run`
// installs; without it a notice says the test did not run, and under CI it
// fails. N-API addons need
// --allow-ffi; the loader reads the file system and the environment.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { needs, PORTABLE_SUITES } from './helpers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const deno = fileURLToPath(new URL('../node_modules/.bin/deno', import.meta.url));

needs(
  'deno',
  existsSync(deno),
  () => {
    test('under Deno, the portable suites pass (deno test)', { timeout: 300_000 }, (t) => {
      const run = spawnSync(deno, ['test', '--allow-all', ...PORTABLE_SUITES], {
        cwd: root,
        encoding: 'utf8',
        timeout: 280_000,
        env: { ...process.env, NO_COLOR: '1' },
      });
      const output = run.stdout + run.stderr;
      assert.equal(run.status, 0, output.slice(-4000));
      const summary = /^ok \| (\d+) passed \| 0 failed/m.exec(output);
      assert.ok(summary, output.slice(-2000));
      const suites = output.split('\n').filter((line) => /^running \d+ tests? from /.test(line));
      assert.equal(suites.length, PORTABLE_SUITES.length, 'every suite ran');
      t.diagnostic(
        `${spawnSync(deno, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]}: ${summary[1]} tests passed`,
      );
    });

    test('under Deno, Deno.serve streams, ends, sees a client leave, and warns of nothing', { timeout: 60_000 }, () => {
      const run = spawnSync(
        deno,
        ['run', '--allow-net', '--allow-ffi', '--allow-env', '--allow-read', '__test__/fixtures/deno-app.mjs'],
        {
          cwd: root,
          encoding: 'utf8',
          timeout: 40_000,
          env: { ...process.env, NO_COLOR: '1' },
        },
      );
      assert.equal(run.status, 0, run.stderr);
      assert.equal(run.stderr, '', 'no warning');
      const result = JSON.parse(run.stdout.trim().split('\n').at(-1));
      assert.equal(result.status, 200);
      assert.equal(result.type, 'text/event-stream');
      assert.equal(result.text, ': ok\n\ndata: tick 0\n\ndata: tick 1\n\ndata: tick 2\n\n');
      assert.deepEqual(result.closes, ['closed by the server', 'client disconnected']);
    });
  },
  'npm install --no-save deno',
);
