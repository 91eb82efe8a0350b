// Every JavaScript and TypeScript block of README.md is a program that runs
// as written, or is marked, on the line before its fence, as a fragment:
//
//   <!-- fragment -->                   a piece of a program, shown for reading
//   <!-- readme-test: { ... } -->       a program, with what its client does
//
// A program is run as its own process, as a user would run it (the port it
// listens on becomes a free one of 127.0.0.1: fixtures/readme-listen.mjs),
// and read by raw clients: each must receive at least one event; the first
// one then drops its connection mid-stream, and a second must still be
// served. It fails when the program throws, exits, prints anything to
// stderr, or delivers nothing. What the test-comment may say:
//
//   "stream": "/events"    where the clients read (default "/")
//   "post": "/send"        once a client's stream is open, POST a text there
//   "get": ["/metrics", "text"]  then GET it: 200, and the body has the text
//   "stop": true           the stream ends with close(true): the reconnect
//                          carrying its token gets 204
//   "signal": "SIGTERM"    at the end, send it: the process exits with 0 and
//                          the open stream ends properly
//   "fetch": true          the block's default export is a fetch handler,
//                          served with @hono/node-server
//   "redis": true          a redis-server of the test's own stands in for
//                          redis://127.0.0.1:6379
//   "logFile": "app.log"   a 200,000-line file of that name beside it
//   "method": "POST", "body": "…"   the clients' request (default GET, no body)
//   "headers": { … }       headers the clients send
//   "client": "Done"       the block is a client, not a server: it runs
//                          against the program before it in the same file
//                          (its http://localhost:3000 becomes that one's
//                          URL), and must exit with 0, print nothing to
//                          stderr, and print this text
//
// The same holds for CONTRIBUTING.md and every guide in docs/.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { RawClient, needs, parseEventStream, startProgram, until } from './helpers.mjs';
import { Redis, hasRedis } from './redis-server.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const preload = join(root, '__test__', 'fixtures', 'readme-listen.mjs');
const CODE = new Set(['js', 'javascript', 'mjs', 'ts', 'typescript']);
const isTypeScript = (block) => block.lang === 'ts' || block.lang === 'typescript';

/** The fenced code blocks of a Markdown text, with the marker line before each. */
function codeBlocks(markdown) {
  const lines = markdown.split('\n');
  const blocks = [];
  let heading = '';
  for (let i = 0; i < lines.length; i++) {
    const heads = /^#+\s+(.*)$/.exec(lines[i]);
    if (heads) heading = heads[1];
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const [, indent, lang] = open;
    const body = [];
    let j = i + 1;
    while (j < lines.length && !/^\s*```\s*$/.test(lines[j])) body.push(lines[j++].slice(indent.length));
    const before = lines[i - 1]?.trim() ?? '';
    const marker = /^<!--\s*(fragment|readme-test:\s*(\{.*\}))\s*-->$/.exec(before);
    blocks.push({
      line: i + 1,
      lang,
      heading,
      code: `${body.join('\n')}\n`,
      fragment: marker?.[1] === 'fragment',
      directives: marker?.[2] ? JSON.parse(marker[2]) : {},
    });
    i = j;
  }
  return blocks;
}

/** The documents whose code must run: the README, CONTRIBUTING.md and the guides. */
const FILES = [
  'README.md',
  'CONTRIBUTING.md',
  ...readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];
const blocks = FILES.flatMap((file) =>
  codeBlocks(readFileSync(join(root, file), 'utf8'))
    .filter((b) => CODE.has(b.lang))
    .map((b) => ({ ...b, file })),
);
const programs = blocks.filter((b) => !b.fragment);

test('README and docs: every JavaScript and TypeScript block is a program or marked as a fragment', () => {
  const inReadme = programs.filter((b) => b.file === 'README.md');
  assert.ok(inReadme.length >= 8, `${inReadme.length} programs found in README.md`);
  for (const block of programs) {
    assert.ok(
      !isTypeScript(block),
      `${block.file} line ${block.line}: a TypeScript program has no runner here; mark it <!-- fragment --> or write it in JavaScript`,
    );
  }
});

/** A new, empty folder for a block inside the project (so that
 * "native-sse" and the dev dependencies resolve). */
function blockDir(block) {
  const dir = join(root, '.cache', 'readme', `${block.file.replace(/\W/g, '-')}-${block.line}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Writes a block into a folder of its own and returns its entry. */
function writeProgram(block, redisUrl) {
  const dir = blockDir(block);
  let code = block.code;
  if (block.directives.redis) {
    assert.ok(code.includes('redis://127.0.0.1:6379'), 'a Redis block names redis://127.0.0.1:6379');
    code = code.replaceAll('redis://127.0.0.1:6379', redisUrl);
  }
  writeFileSync(join(dir, 'block.mjs'), code);
  if (block.directives.logFile) {
    const lines = Array.from({ length: 200_000 }, (_, i) => `${new Date(0).toISOString()} line ${i} of the log`);
    writeFileSync(join(dir, block.directives.logFile), `${lines.join('\n')}\n`);
  }
  let entry = 'block.mjs';
  if (block.directives.fetch) {
    entry = 'serve.mjs';
    writeFileSync(
      join(dir, entry),
      `import { serve } from '@hono/node-server';\nimport app from './block.mjs';\nserve({ fetch: app.fetch, port: 3000 });\n`,
    );
  }
  return { dir, entry };
}

/** Opens a client on the program's stream and waits for an event. */
async function readEvent(t, url, block, headers = {}) {
  const { stream = '/', post, method, body } = block.directives;
  const client = RawClient.connect(Number(url.port), {
    path: stream,
    headers: { ...block.directives.headers, ...headers },
    method,
    body,
  });
  t.after(() => client.destroy());
  await until(() => client.head !== null || client.closed, 30_000, `the response to GET ${stream}`);
  assert.equal(client.head?.status, 200, `GET ${stream}: ${client.raw.toString('latin1').slice(0, 200)}`);
  if (post) {
    const response = await fetch(new URL(post, url), { method: 'POST', body: 'hello from the README test' });
    assert.ok(response.ok, `POST ${post}: ${response.status}`);
  }
  await until(() => parseEventStream(client.body).events.length > 0, 30_000, `an event on ${stream}`);
  return client;
}

/** Starts a block's program; resolves with it and its URL. */
async function startBlock(t, block, redisUrl) {
  const { dir, entry } = writeProgram(block, redisUrl);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { SSE_STOP_KEY: 'the stop-token key of this deployment, 32 bytes or more', NO_COLOR: '1' };
  const program = await startProgram(t, process.execPath, ['--import', preload, entry], env, { cwd: dir });
  return { program, url: new URL(program.url) };
}

/** Runs a client block against its server's program. */
async function runClient(t, client, server) {
  const { program, url } = await startBlock(t, server);
  const dir = blockDir(client);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'client.mjs'), client.code.replaceAll('http://localhost:3000', url.origin));
  const run = spawnSync(process.execPath, ['client.mjs'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, `the client exited with ${run.status}: ${run.stderr}`);
  assert.equal(run.stderr, '', "nothing on the client's stderr");
  assert.ok(run.stdout.includes(client.directives.client), `the client printed: ${run.stdout}`);
  assert.equal(program.child.exitCode, null, 'the server is still running');
  assert.equal(program.stderr(), '', "nothing on the server's stderr");
}

async function runProgram(t, block, redisUrl) {
  const { program, url } = await startBlock(t, block, redisUrl);
  const alive = () => program.child.exitCode === null && program.child.signalCode === null;

  // The first client reads an event, then leaves mid-stream (or, stopped,
  // comes back with its token and is refused).
  const first = await readEvent(t, url, block);
  if (block.directives.stop) {
    await until(() => first.ended, 30_000, 'the stream to end');
    const stop = parseEventStream(first.body).events.at(-1);
    assert.equal(stop.type, 'native-sse:stop');
    const back = RawClient.connect(Number(url.port), {
      path: block.directives.stream ?? '/',
      headers: { 'Last-Event-ID': stop.lastEventId },
    });
    t.after(() => back.destroy());
    await until(() => back.head !== null, 30_000, 'the answer to the stopped client');
    assert.equal(back.head.status, 204);
  }
  first.socket.resetAndDestroy();
  // A second one is still served: the first one's leaving ended nothing.
  const second = await readEvent(t, url, block);
  assert.ok(alive(), 'the program is still running');
  if (block.directives.get) {
    const [path, text] = block.directives.get;
    const response = await fetch(new URL(path, url));
    const body = await response.text();
    assert.equal(response.status, 200, `GET ${path}`);
    assert.ok(body.includes(text), `GET ${path} has ${JSON.stringify(text)}: ${body.slice(0, 500)}`);
  }
  if (block.directives.signal) {
    const exit = once(program.child, 'exit');
    program.child.kill(block.directives.signal);
    const [code] = await exit;
    assert.equal(code, 0, `exit code after ${block.directives.signal}`);
    await until(() => second.ended || second.closed, 30_000, 'the open stream to end');
    assert.ok(second.ended, 'the open stream ended with its last chunk');
  }
  assert.equal(program.stderr(), '', 'nothing on stderr');
}

for (const [at, block] of programs.entries()) {
  if (isTypeScript(block)) continue; // refused by the test above
  if (block.directives.client !== undefined) {
    const server = programs.slice(0, at).findLast((b) => b.file === block.file && b.directives.client === undefined);
    test(`${block.file} line ${block.line} ("${block.heading}"), a client, runs as written`, async (t) => {
      assert.ok(server, 'a client block follows the program it is a client of');
      await runClient(t, block, server);
    });
    continue;
  }
  const name = `${block.file} line ${block.line} ("${block.heading}") runs as written`;
  const register = () =>
    test(name, async (t) => {
      let redis;
      if (block.directives.redis) {
        redis = await Redis.start();
        t.after(() => redis.stop());
      }
      await runProgram(t, block, redis?.url);
    });
  if (block.directives.redis) needs('redis-server', hasRedis, register, 'apt-get install redis-server');
  else register();
}
