// npm run lint: the layers of src/ keep to their rooms (see src/lib.rs).
// The core (src/core) names neither napi nor tokio; the I/O (src/io) does
// not name napi. Only src/bindings touches Node-API. Any line that names
// them fails, comments included, as `grep -rn napi src/core src/io` would.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const RULES = [
  { folder: 'src/core', forbidden: /napi|tokio/, what: 'napi or tokio' },
  { folder: 'src/io', forbidden: /napi/, what: 'napi' },
];

function* rustFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* rustFiles(path);
    else if (entry.name.endsWith('.rs')) yield path;
  }
}

const faults = [];
let files = 0;
for (const { folder, forbidden, what } of RULES) {
  for (const file of rustFiles(join(root, folder))) {
    files++;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (forbidden.test(line)) faults.push(`${relative(root, file)}:${i + 1}: names ${what}: ${line.trim()}`);
      });
  }
}
// The direct and adopted paths are a chain (src/io/mod.rs): each file
// names only the files before it, and only the first holds `unsafe`.
const CHAIN = ['sys', 'conn', 'writers', 'adopted', 'direct'];
CHAIN.forEach((name, at) => {
  const file = join(root, 'src/io', `${name}.rs`);
  const later = CHAIN.slice(at + 1);
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '');
      for (const other of later) {
        if (new RegExp(`(io|super)::${other}\\b`).test(code))
          faults.push(`src/io/${name}.rs:${i + 1}: uses src/io/${other}.rs, which comes after it: ${line.trim()}`);
      }
      if (at > 0 && /\bunsafe\b/.test(code))
        faults.push(`src/io/${name}.rs:${i + 1}: unsafe outside src/io/sys.rs: ${line.trim()}`);
    });
});
if (files === 0) {
  console.error('check-layers: no Rust files found under src/core and src/io');
  process.exit(1);
}
if (faults.length > 0) {
  console.error(`The layers are crossed:\n${faults.join('\n')}`);
  process.exit(1);
}
console.log(
  `check-layers: ${files} files of src/core and src/io name no napi (nor the core tokio); ${CHAIN.join(' → ')} each use only those before`,
);
