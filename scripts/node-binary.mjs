// Node's own binary of a major, from the npm registry: the package
// node-<os>-<cpu>@<major> ships it as bin/node. Installed once into
// .cache/node/<name>; shared by node-majors.mjs and cross-build.mjs.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** The bin folder of `major`'s node for `cpu` (this machine's by default),
 * installed from the registry if it is not there yet. */
export function nodeBinary(major, cpu = process.arch) {
  const pkg = `node-${process.platform}-${cpu}`;
  const dir = join(root, '.cache', 'node', cpu === process.arch ? major : `${cpu}-${major}`);
  const bin = join(dir, 'node_modules', pkg, 'bin');
  if (!existsSync(join(bin, 'node'))) {
    mkdirSync(dir, { recursive: true });
    // Another machine's binary (an arm64 one run under qemu-user) needs
    // npm told which cpu, and --force past the platform check.
    const other = cpu === process.arch ? [] : ['--force', `--os=${process.platform}`, `--cpu=${cpu}`];
    const run = spawnSync(
      npm,
      ['install', '--prefix', dir, '--no-audit', '--no-fund', '--no-package-lock', ...other, `${pkg}@${major}`],
      {
        stdio: 'inherit',
      },
    );
    if (run.status !== 0) throw new Error(`npm could not install ${pkg}@${major}`);
  }
  return bin;
}
