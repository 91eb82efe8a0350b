// npm run test:node-majors: the node --test suite under every maintained
// Node major, with the addon built once (an N-API addon loads in each), but
// for the files that run it under Bun and Deno.
//
//   npm run test:node-majors              (22, 24 and 26)
//   npm run test:node-majors -- 24 26     (those majors only)
//
// Each major's binary is Node's own, from the npm registry (the package
// node-<platform>-<arch>@<major>, which ships bin/node), kept in
// .cache/node/<major>; it comes first on the PATH, so test files that start
// `node` get it too. Prints a line per major and exits 1 if any failed; the
// failing tests of each major are printed again at the very end, since a CI
// log is often read from its tail.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeBinary } from './node-binary.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const majors = process.argv.slice(2).length ? process.argv.slice(2) : ['22', '24', '26'];
// bun.test.mjs and deno.test.mjs run the suite's files under Bun and Deno:
// the Node major only starts them, so they run once, in `npm test` (about
// 150 s of a CI run that has 45 minutes).
const OTHER_RUNTIMES = new Set(['bun.test.mjs', 'deno.test.mjs']);
const files = readdirSync(join(root, '__test__'))
  .filter((name) => name.endsWith('.test.mjs') && !OTHER_RUNTIMES.has(name))
  .map((name) => join('__test__', name));

const results = [];
for (const major of majors) {
  if (!/^\d+$/.test(major)) throw new TypeError(`a Node major is a number, not ${JSON.stringify(major)}`);
  const bin = nodeBinary(major);
  const node = join(bin, 'node');
  const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  console.log(`\n=== ${version}: node --test (${files.length} files)\n`);
  const started = Date.now();
  const { status, failing } = await runSuite(node, bin);
  results.push({ version, passed: status === 0, failing, seconds: Math.round((Date.now() - started) / 1000) });
}

console.log('\n| Node | suite | seconds |\n|---|---|--:|');
for (const { version, passed, seconds } of results)
  console.log(`| ${version} | ${passed ? 'passed' : 'FAILED'} | ${seconds} |`);
for (const { version, failing } of results)
  if (failing.length) console.log(`\n=== ${version}: failing tests\n${failing.join('\n')}`);
process.exitCode = results.every((r) => r.passed) ? 0 : 1;

/** Runs the suite under `node`, its output passed through as it comes; the
 * spec reporter's "failing tests" part (at most 200 lines) is kept. */
function runSuite(node, bin) {
  return new Promise((resolve) => {
    const child = spawn(
      node,
      ['--test', '--test-timeout=300000', '--test-force-exit', '--test-reporter=spec', ...files],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH}` },
      },
    );
    const failing = [];
    let inFailing = false;
    let rest = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      for (const line of lines) {
        if (line.includes('failing tests:')) inFailing = true;
        if (inFailing && failing.length < 200) failing.push(line);
      }
    });
    child.on('close', (status) => resolve({ status, failing }));
  });
}
