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
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = codeBlocks(readme).filter((b) => CODE.has(b.lang));
const programs = blocks.filter((b) => !b.fragment);

test('README: every JavaScript and TypeScript block is a program or marked as a fragment', () => {
  assert.ok(programs.length >= 8, `${programs.length} programs found among ${blocks.length} blocks`);
  for (const block of programs) {
    assert.ok(
      !isTypeScript(block),
      `line ${block.line}: a TypeScript program has no runner here; mark it <!-- fragment --> or write it in JavaScript`,
    );
  }
});

/** Writes a block into a folder of its own inside the project (so that
 * "native-sse" and the dev dependencies resolve) and returns its entry. */
function writeProgram(block, redisUrl) {
  const dir = join(root, '.cache', 'readme', `line-${block.line}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
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
  const { stream = '/', post } = block.directives;
  const client = RawClient.connect(Number(url.port), { path: stream, headers });
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

async function runProgram(t, block, redisUrl) {
  const { dir, entry } = writeProgram(block, redisUrl);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { SSE_STOP_KEY: 'the stop-token key of this deployment, 32 bytes or more', NO_COLOR: '1' };
  const program = await startProgram(t, process.execPath, ['--import', preload, entry], env, { cwd: dir });
  const url = new URL(program.url);
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

for (const block of programs) {
  if (isTypeScript(block)) continue; // refused by the test above
  const name = `README line ${block.line} ("${block.heading}") runs as written`;
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
