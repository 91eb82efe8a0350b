// npm run test:node-majors: the node --test suite under every maintained
// Node major, with the addon built once (an N-API addon loads in each).
//
//   npm run test:node-majors              (22, 24 and 26)
//   npm run test:node-majors -- 24 26     (those majors only)
//
// Each major's binary is Node's own, from the npm registry (the package
// node-<platform>-<arch>@<major>, which ships bin/node), kept in
// .cache/node/<major>; it comes first on the PATH, so test files that start
// `node` get it too. Prints a line per major and exits 1 if any failed.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeBinary } from './node-binary.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const majors = process.argv.slice(2).length ? process.argv.slice(2) : ['22', '24', '26'];
const files = readdirSync(join(root, '__test__'))
  .filter((name) => name.endsWith('.test.mjs'))
  .map((name) => join('__test__', name));

const results = [];
for (const major of majors) {
  if (!/^\d+$/.test(major)) throw new TypeError(`a Node major is a number, not ${JSON.stringify(major)}`);
  const bin = nodeBinary(major);
  const node = join(bin, 'node');
  const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  console.log(`\n=== ${version}: node --test (${files.length} files)\n`);
  const started = Date.now();
  const run = spawnSync(node, ['--test', '--test-reporter=spec', ...files], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH}` },
  });
  results.push({ version, passed: run.status === 0, seconds: Math.round((Date.now() - started) / 1000) });
}

console.log('\n| Node | suite | seconds |\n|---|---|--:|');
for (const { version, passed, seconds } of results)
  console.log(`| ${version} | ${passed ? 'passed' : 'FAILED'} | ${seconds} |`);
process.exitCode = results.every((r) => r.passed) ? 0 : 1;
