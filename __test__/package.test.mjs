// The package as npm would publish it: publint and arethetypeswrong find
// nothing, so that `import` and `require`, and TypeScript in every module
// mode, see the same package.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));

test('publint finds nothing to fix', () => {
  const run = spawnSync(bin('publint'), ['--strict'], { cwd: root, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /All good/);
});

test('arethetypeswrong: the typings resolve for ESM and CommonJS alike', () => {
  const run = spawnSync(bin('attw'), ['--pack', '.', '--format', 'json'], { cwd: root, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const report = JSON.parse(run.stdout);
  assert.ok(Array.isArray(report.analysis.problems), 'the report has its problems list');
  assert.deepEqual(report.analysis.problems, []);
});
