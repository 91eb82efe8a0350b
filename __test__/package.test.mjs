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

test('npm run package: the tarballs install into a new project with no network and no Rust, and serve a stream', async () => {
  const { mkdtempSync, writeFileSync, readdirSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  // The addon was built by `npm test`; this packs it the way a release does.
  const packed = spawnSync(process.execPath, ['scripts/package.mjs'], { cwd: root, encoding: 'utf8' });
  assert.equal(packed.status, 0, packed.stderr);
  const tarballs = packed.stdout
    .trim()
    .split('\n')
    .map((line) => join(root, line.trim()));
  assert.deepEqual(tarballs.map((file) => file.split('/').at(-1)).sort(), [
    'native-sse-0.1.0.tgz',
    'native-sse-linux-x64-gnu-0.1.0.tgz',
  ]);
  const project = mkdtempSync(join(tmpdir(), 'native-sse-consumer-'));
  try {
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    const install = spawnSync('npm', ['install', '--offline', '--no-audit', '--no-fund', ...tarballs], {
      cwd: project,
      encoding: 'utf8',
    });
    assert.equal(install.status, 0, install.stderr);
    assert.deepEqual(
      readdirSync(join(project, 'node_modules'))
        .filter((name) => !name.startsWith('.'))
        .sort(),
      ['native-sse', 'native-sse-linux-x64-gnu'],
    );
    // The main package holds no binary: it comes from the platform package.
    assert.ok(!readdirSync(join(project, 'node_modules', 'native-sse')).some((name) => name.endsWith('.node')));
    // Its package.json holds what a consumer needs, nothing of development.
    const { readFileSync } = await import('node:fs');
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules', 'native-sse', 'package.json'), 'utf8'));
    for (const field of ['scripts', 'devDependencies', 'overrides', 'napi']) {
      assert.equal(manifest[field], undefined, `the published package.json has no ${field}`);
    }
    assert.deepEqual(Object.keys(manifest.optionalDependencies ?? {}), ['native-sse-linux-x64-gnu']);
    for (const field of ['name', 'version', 'main', 'types', 'exports', 'files', 'engines', 'license']) {
      assert.ok(manifest[field] !== undefined, `the published package.json has ${field}`);
    }
    const script = `
      import http from 'node:http';
      import net from 'node:net';
      import { EventEndpoint } from 'native-sse';
      import { createRequire } from 'node:module';
      const cjs = createRequire(import.meta.url)('native-sse');
      if (cjs.EventEndpoint !== EventEndpoint) throw new Error('two copies');
      const server = http.createServer((req, res) => new EventEndpoint(req, res).send('from the package')).listen(0, '127.0.0.1', () => {
        const socket = net.connect(server.address().port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));
        let text = '';
        socket.on('data', (data) => {
          text += data;
          if (text.includes('data: from the package')) { console.log('ok'); process.exit(0); }
        });
      });
    `;
    writeFileSync(join(project, 'check.mjs'), script);
    const check = spawnSync(process.execPath, ['check.mjs'], { cwd: project, encoding: 'utf8', timeout: 10_000 });
    assert.equal(check.stdout.trim(), 'ok', check.stderr);
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
});

test('installed without its platform package, require() fails with one line naming the platform', async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const packed = spawnSync(process.execPath, ['scripts/package.mjs'], { cwd: root, encoding: 'utf8' });
  assert.equal(packed.status, 0, packed.stderr);
  const main = join(
    root,
    packed.stdout
      .trim()
      .split('\n')
      .find((line) => line.includes('native-sse-0.1.0'))
      .trim(),
  );
  const project = mkdtempSync(join(tmpdir(), 'native-sse-noplatform-'));
  try {
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    const install = spawnSync('npm', ['install', '--offline', '--omit=optional', '--no-audit', '--no-fund', main], {
      cwd: project,
      encoding: 'utf8',
    });
    assert.equal(install.status, 0, install.stderr);
    const run = spawnSync(
      process.execPath,
      [
        '-e',
        "try { require('native-sse') } catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message, why: Boolean(err.loadError) })) }",
      ],
      { cwd: project, encoding: 'utf8' },
    );
    const { code, message, why } = JSON.parse(run.stdout);
    assert.equal(code, 'ERR_SSE_NO_BINARY');
    assert.match(message, /^native-sse has no prebuilt binary for linux-x64-gnu: build it from source/);
    assert.ok(!message.includes('\n'), 'one line');
    assert.ok(why, "the loader's own error is kept, as loadError");
    // Uncaught, it prints its one line (and where it was thrown), not the
    // loader's attempts, nor the chain of require() calls.
    const uncaught = spawnSync(process.execPath, ['-e', "require('native-sse')"], { cwd: project, encoding: 'utf8' });
    assert.notEqual(uncaught.status, 0);
    const printed = uncaught.stderr.split('\n').filter((line) => line.trim() !== '');
    assert.ok(
      printed.some((line) => line.startsWith('Error [ERR_SSE_NO_BINARY]: native-sse has no prebuilt binary')),
      uncaught.stderr,
    );
    assert.ok(!/cause|Cannot find|loadError|code:/.test(uncaught.stderr), uncaught.stderr);
    assert.ok(printed.filter((line) => /^\s+at /.test(line)).length <= 1, uncaught.stderr);
    assert.ok(printed.length <= 6, uncaught.stderr);
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
});
