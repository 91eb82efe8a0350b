// npm run test:loaded: the node --test suite with the machine busy, as on a
// shared CI runner: one busy-looping process per core runs beside it for as
// long as the suite does.
//
//   npm run test:loaded                          (every file of __test__ but
//                                                bun and deno's)
//   npm run test:loaded -- __test__/direct.test.mjs   (those files only)
//
// The busy processes are started and stopped here. Each also ends by itself
// once this process is gone (it checks a few times a second) or after an
// hour, so that none outlives a run that was killed.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const given = process.argv.slice(2);
// bun.test.mjs and deno.test.mjs run the suite's files under Bun and Deno,
// once, in `npm test`: here they would take a third of the run (about 5 of
// CI's 45 minutes) to say again what Node's run of the same files says.
const OTHER_RUNTIMES = new Set(['bun.test.mjs', 'deno.test.mjs']);
const files = given.length
  ? given
  : readdirSync(join(root, '__test__'))
      .filter((name) => name.endsWith('.test.mjs') && !OTHER_RUNTIMES.has(name))
      .sort()
      .map((name) => join('__test__', name));

// Spins on the CPU; stops when its parent has gone or after an hour.
const spin = `
  const parent = ${process.pid};
  const end = Date.now() + 3600e3;
  let next = 0;
  for (let i = 0; ; i++) {
    if ((i & 0xfffff) === 0) {
      const now = Date.now();
      if (now > end) break;
      if (now > next) {
        next = now + 250;
        try { process.kill(parent, 0); } catch { break; }
      }
    }
  }
`;
const cores = availableParallelism();
const busy = Array.from({ length: cores }, () => spawn(process.execPath, ['-e', spin], { stdio: 'ignore' }));
const stopBusy = () => {
  for (const child of busy) child.kill('SIGKILL');
};
process.on('exit', stopBusy);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    stopBusy();
    process.exit(130);
  });
}

console.log(`test:loaded: ${cores} busy-looping processes beside node --test (${files.length} files)`);
const started = Date.now();
const suite = spawn(process.execPath, ['--test', '--test-timeout=300000', '--test-force-exit', ...files], {
  cwd: root,
  stdio: 'inherit',
});
suite.on('exit', (code, signal) => {
  stopBusy();
  console.log(
    `test:loaded: the suite ${code === 0 ? 'passed' : 'FAILED'} under load in ${Math.round((Date.now() - started) / 1000)} s`,
  );
  process.exit(code ?? (signal ? 1 : 0));
});
