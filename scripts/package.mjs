// npm run package: writes to dist/ the tarballs a release publishes, the
// napi-rs way: the main package, with `optionalDependencies` on the
// platform packages, and each platform package with its `.node` file.
//
// The main package is staged from `npm pack` (its `files`), the built
// addons are put into the platform packages by `napi artifacts`, and
// `napi pre-publish --skip-optional-publish` writes the optionalDependencies
// (it reads the release from a git commit, so the stage gets a throwaway
// one). Nothing in the working tree is changed but dist/.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const napi = join(root, 'node_modules', '.bin', 'napi');
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });

// Built addons: this machine's (npm run build), and any others built into
// the folders named by --artifacts=DIR (cross builds, a release's jobs).
const dirs = [
  root,
  ...process.argv
    .slice(2)
    .filter((a) => a.startsWith('--artifacts='))
    .map((a) => a.slice(12)),
];
const addons = dirs.flatMap((dir) =>
  readdirSync(dir)
    .filter((name) => /^native-sse\..+\.node$/.test(name))
    .map((name) => ({ name, path: join(dir, name) })),
);
if (addons.length === 0) throw new Error('no built addon (native-sse.*.node): run `npm run build` first');

// napi's names of the platform packages, by target.
const PLATFORMS = {
  'x86_64-apple-darwin': 'darwin-x64',
  'aarch64-apple-darwin': 'darwin-arm64',
  'x86_64-pc-windows-msvc': 'win32-x64-msvc',
  'aarch64-pc-windows-msvc': 'win32-arm64-msvc',
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-musl': 'linux-arm64-musl',
};

/** Fields of package.json for developing native-sse, left out of the release. */
const DEVELOPMENT_FIELDS = ['scripts', 'devDependencies', 'overrides', 'napi'];

const stage = mkdtempSync(join(tmpdir(), 'native-sse-package-'));
try {
  run('npm', ['pack', '--pack-destination', stage, '--silent'], root);
  run('tar', ['xzf', readdirSync(stage).find((f) => f.endsWith('.tgz'))], stage);
  const pkg = join(stage, 'package');
  cpSync(join(root, 'npm'), join(pkg, 'npm'), { recursive: true });
  mkdirSync(join(pkg, 'artifacts'));
  for (const addon of addons) cpSync(addon.path, join(pkg, 'artifacts', addon.name));
  // Only the targets built here are packed (a release builds them all).
  const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
  const built = new Set(addons.map((addon) => addon.name.slice('native-sse.'.length, -'.node'.length)));
  manifest.napi.targets = manifest.napi.targets.filter((target) => built.has(PLATFORMS[target]));
  writeFileSync(join(pkg, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  run(napi, ['artifacts', '--output-dir', 'artifacts', '--npm-dir', 'npm'], pkg);
  // The binary belongs to its platform package, not to the main one.
  for (const name of readdirSync(pkg)) if (name.endsWith('.node')) rmSync(join(pkg, name));
  rmSync(join(pkg, 'artifacts'), { recursive: true });
  const git = ['-c', 'user.name=native-sse', '-c', 'user.email=release@localhost'];
  run('git', ['init', '-q'], pkg);
  run('git', [...git, 'add', '-A'], pkg);
  run('git', [...git, 'commit', '-qm', 'release'], pkg);
  run(napi, ['pre-publish', '--skip-optional-publish', '--tag-style', 'npm'], pkg);
  rmSync(join(pkg, '.git'), { recursive: true, force: true });
  // What a consumer needs, nothing of the development setup: no scripts
  // (npm would run none of them on install, but they name this repository's
  // tools), devDependencies, overrides, or napi's build settings.
  const published = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
  for (const field of DEVELOPMENT_FIELDS) delete published[field];
  writeFileSync(join(pkg, 'package.json'), `${JSON.stringify(published, null, 2)}\n`);

  rmSync(dist, { recursive: true, force: true });
  mkdirSync(dist);
  const tarballs = [run('npm', ['pack', '--pack-destination', dist, '--silent'], pkg).trim()];
  for (const platform of readdirSync(join(pkg, 'npm'))) {
    const dir = join(pkg, 'npm', platform);
    if (readdirSync(dir).some((name) => name.endsWith('.node'))) {
      tarballs.push(run('npm', ['pack', '--pack-destination', dist, '--silent'], dir).trim());
    }
  }
  console.log(tarballs.map((name) => `dist/${name}`).join('\n'));
} finally {
  rmSync(stage, { recursive: true, force: true });
}
