// Under Bun: a fetch-style stream served by Bun.serve stays open past Bun's
// 10 s idle timeout, because the default keep-alive there is 8 s. Bun comes
// from the `bun` npm package (its binary ships in a platform package),
// which `.ci/run` installs; without it a notice says the test did not run,
// and under CI it fails.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { needs } from './helpers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const bun = fileURLToPath(new URL('../node_modules/.bin/bun', import.meta.url));

needs('bun', existsSync(bun), () => {
  test('under Bun, an idle stream outlives Bun.serve\'s 10 s idle timeout', { timeout: 60_000 }, () => {
      const run = spawnSync(bun, ['__test__/fixtures/bun-app.mjs'], { cwd: root, encoding: 'utf8', timeout: 40_000 });
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1));
    assert.ok(result.text.startsWith(': ok\n\ndata: hello from Bun\n\n'), JSON.stringify(result));
    assert.ok(result.text.includes('\n:\n'), 'a keep-alive comment went out before Bun\'s timeout');
    assert.equal(result.ended, false);
    assert.equal(result.failed, null);
    assert.deepEqual(result.closes, []);
    assert.ok(result.seconds >= 12);
  });
}, 'npm install --no-save bun');
