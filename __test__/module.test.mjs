// Both module systems load the package by its name, and share one class.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as esm from 'native-sse';

const root = fileURLToPath(new URL('..', import.meta.url));

test('import and require give the same EventEndpoint', () => {
  const cjs = createRequire(import.meta.url)('native-sse');
  assert.equal(typeof esm.EventEndpoint, 'function');
  assert.equal(esm.EventEndpoint, cjs.EventEndpoint);
  assert.equal(esm.CloseEvent, cjs.CloseEvent);
});

test('require("native-sse") works from a CommonJS script', () => {
  const out = execFileSync(
    process.execPath,
    ['-e', 'const { EventEndpoint } = require("native-sse"); console.log(typeof EventEndpoint, EventEndpoint.name)'],
    { cwd: root, encoding: 'utf8' },
  );
  assert.equal(out.trim(), 'function EventEndpoint');
});

test('the package entry points are what package.json names', async () => {
  const pkg = createRequire(import.meta.url)('../package.json');
  assert.equal(pkg.name, 'native-sse');
  assert.deepEqual(pkg.exports['.'].require, { types: './index.d.ts', default: './index.js' });
  assert.deepEqual(pkg.exports['.'].import, { types: './index.d.mts', default: './index.mjs' });
});
