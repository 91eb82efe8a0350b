// Real servers on 127.0.0.1 and real clients, shared by the suites.
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import test from 'node:test';
import assert from 'node:assert/strict';
import { EventEndpoint } from 'native-sse';

/** Starts a node:http server on a free port of 127.0.0.1. */
export async function serve(handler) {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}/`,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Starts a program that prints the URL it listens on (an example, run with
 * PORT=0 and `env`), in the project's folder (or `cwd`); stops it after the
 * test. Resolves to the URL it printed, `stderr()`, what it wrote to stderr
 * (passed through as well), and the child process.
 */
export async function startProgram(t, command, args, env = {}, { cwd = new URL('..', import.meta.url) } = {}) {
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    stderr += d;
    process.stderr.write(d);
  });
  t.after(() => child.kill());
  const printed = /https?:\/\/127\.0\.0\.1:\d+\/\S*/;
  await until(() => printed.test(stdout) || child.exitCode !== null, 20_000, `${args.at(-1)} to print its URL`);
  assert.ok(printed.test(stdout), `${args.at(-1)} prints its URL: ${stdout}${stderr}`);
  return { url: printed.exec(stdout)[0], stderr: () => stderr, child };
}

/** Resolves once `predicate()` holds (or resolves to true), polling;
 * rejects after `ms`, measured on the monotonic clock: a wall clock that is
 * stepped meanwhile (a CI machine's time being set) times nothing out. */
export async function until(predicate, ms = 5000, what = undefined) {
  const deadline = performance.now() + ms;
  while (!(await predicate())) {
    if (performance.now() > deadline)
      throw new Error(`timed out after ${ms} ms waiting for ${what ?? String(predicate)}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * An HTTP/1.1 client on a raw socket that keeps every byte: the head as
 * sent, and the body with its chunked framing undone, chunk by chunk (one
 * chunk per `res.write`).
 */
export class RawClient {
  /** What arrived, as pieces joined when `raw` is read (joining on every
   * arrival copies a megabytes-long body once per packet). */
  #pieces = [];
  closed = false;

  get raw() {
    if (this.#pieces.length !== 1) this.#pieces = [Buffer.concat(this.#pieces)];
    return this.#pieces[0];
  }

  set raw(bytes) {
    this.#pieces = [bytes];
  }

  static connect(port, { path = '/', headers = {}, method = 'GET', body = undefined } = {}) {
    const client = new RawClient();
    const socket = net.connect(port, '127.0.0.1');
    client.socket = socket;
    const lines = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Accept: text/event-stream'];
    if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    // latin1: one byte per character, so that a test can send any bytes.
    socket.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    if (body !== undefined) socket.write(body, 'utf8');
    socket.on('data', (data) => client.#pieces.push(data));
    socket.on('close', () => {
      client.closed = true;
    });
    socket.on('error', () => {});
    return client;
  }

  get headEnd() {
    return this.raw.indexOf('\r\n\r\n');
  }

  /** The status line and headers, or null before they arrived. */
  get head() {
    const end = this.headEnd;
    if (end < 0) return null;
    const [statusLine, ...lines] = this.raw.subarray(0, end).toString('latin1').split('\r\n');
    const headers = {};
    for (const line of lines) {
      const at = line.indexOf(':');
      headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
    }
    return { status: Number(statusLine.split(' ')[1]), statusLine, headers };
  }

  /** The body's chunks as Buffers (complete chunks only). */
  get chunks() {
    const head = this.head;
    if (head === null) return [];
    const body = this.raw.subarray(this.headEnd + 4);
    if (head.headers['transfer-encoding'] !== 'chunked') return body.length ? [body] : [];
    const chunks = [];
    let at = 0;
    for (;;) {
      const lineEnd = body.indexOf('\r\n', at);
      if (lineEnd < 0) break;
      const size = parseInt(body.subarray(at, lineEnd).toString('latin1'), 16);
      if (size === 0 || body.length < lineEnd + 2 + size + 2) break;
      chunks.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
    return chunks;
  }

  /** The body decoded as UTF-8. */
  get body() {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  /** Whether the chunked body has ended with its zero-length chunk. */
  get ended() {
    return this.raw.includes('\r\n0\r\n\r\n');
  }

  async waitFor(text, ms = 5000) {
    await until(() => this.body.includes(text), ms, JSON.stringify(text));
  }

  destroy() {
    this.socket.destroy();
  }
}

/**
 * The WHATWG event-stream algorithm, for checking bytes in JavaScript the way
 * src/testing/whatwg.rs checks them in Rust.
 */
export function parseEventStream(text) {
  const events = [];
  let data = '';
  let type = '';
  let lastEventId = '';
  let retry = null;
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  lines.pop(); // an unterminated last line is incomplete
  for (const line of lines) {
    if (line === '') {
      if (data !== '') events.push({ type: type || 'message', data: data.slice(0, -1), lastEventId });
      data = '';
      type = '';
      continue;
    }
    if (line.startsWith(':')) continue;
    const at = line.indexOf(':');
    const field = at < 0 ? line : line.slice(0, at);
    let value = at < 0 ? '' : line.slice(at + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data += `${value}\n`;
    else if (field === 'event') type = value;
    else if (field === 'id' && !value.includes('\0')) lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
  }
  return { events, retry };
}

/**
 * Serves one EventEndpoint (made with `options`) to one raw client, and
 * resolves once the stream has opened. Everything closes after the test.
 */
export async function openEndpoint(t, options = undefined, { headers = {} } = {}) {
  let endpoint;
  let response;
  const app = await serve((req, res) => {
    response = res;
    endpoint = new EventEndpoint(req, res, options);
  });
  t.after(() => app.close());
  const client = RawClient.connect(app.port, { headers });
  t.after(() => client.destroy());
  await until(() => endpoint !== undefined);
  await client.waitFor(': ok');
  return { endpoint, response, client, app };
}

/** Orders stream ids "<ms>-<seq>" (both exact as Numbers at any real time). */
export function compareStreamIds(a, b) {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am - bm || as - bs;
}

/**
 * An event-stream client over node:http that parses as bytes arrive and keeps
 * a tally rather than every byte, for streams of hundreds of thousands of
 * events: how many `message` events came, whether their stream ids only ever
 * increased (so none came twice or out of order), the first `keep` of them,
 * and the named events.
 */
export function tallyEvents(url, { headers = {}, keep = 1000, paused = false } = {}) {
  const tally = {
    status: 0,
    headers: null,
    count: 0,
    firstId: '',
    lastId: '',
    outOfOrder: 0,
    events: [],
    named: [],
    ended: false,
    bytes: 0,
    close: () => request.destroy(),
    /** Stops reading (with `paused: true`, from the start) and goes on. */
    pause: () => tally.response?.pause(),
    resume: () => {
      paused = false;
      tally.response?.resume();
    },
    response: null,
  };
  const onEvent = (id, type, data) => {
    if (type !== 'message') {
      tally.named.push({ type, data, id });
      return;
    }
    if (tally.lastId !== '' && compareStreamIds(id, tally.lastId) <= 0) tally.outOfOrder++;
    if (tally.count === 0) tally.firstId = id;
    tally.lastId = id;
    tally.count++;
    if (tally.events.length < keep) tally.events.push({ id, data });
  };
  const request = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => {
    tally.status = response.statusCode;
    tally.headers = response.headers;
    tally.response = response;
    response.setEncoding('utf8');
    let pending = '';
    let id = '';
    response.on('data', (text) => {
      tally.bytes += Buffer.byteLength(text);
      pending += text;
      let at = 0;
      for (;;) {
        const end = pending.indexOf('\n\n', at);
        if (end < 0) break;
        let type = 'message';
        let data = null;
        for (const line of pending.slice(at, end).split('\n')) {
          if (line.startsWith('id: ')) id = line.slice(4);
          else if (line.startsWith('event: ')) type = line.slice(7);
          else if (line === 'data' || line.startsWith('data: '))
            data = data === null ? line.slice(6) : `${data}\n${line.slice(6)}`;
        }
        if (data !== null) onEvent(id, type, data);
        at = end + 2;
      }
      pending = pending.slice(at);
    });
    response.on('end', () => (tally.ended = true));
    response.on('error', () => (tally.ended = true));
    if (paused) response.pause();
  });
  request.on('error', () => (tally.ended = true));
  return tally;
}

/**
 * The same tally, kept by a client in a process of its own
 * (`fixtures/tally-client.mjs`), for a test that measures this process's
 * memory: the strings a client builds to parse megabytes of events are
 * garbage that V8 collects when it likes, and would count as the server's.
 * The tally's fields follow the child's reports; the child is killed after
 * the test.
 */
export function tallyElsewhere(t, url, { headers = {} } = {}) {
  const tally = { status: 0, count: 0, firstId: '', lastId: '', outOfOrder: 0, ended: false, bytes: 0 };
  const child = spawn(
    process.execPath,
    [new URL('./fixtures/tally-client.mjs', import.meta.url).pathname, url, JSON.stringify(headers)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let pending = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text) => {
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop();
    if (lines.length > 0) Object.assign(tally, JSON.parse(lines.at(-1)));
  });
  child.on('exit', () => (tally.ended = true));
  t.after(() => child.kill());
  return tally;
}

/**
 * Registers tests that need a program the project's CI installs (`.ci/run`),
 * or, without it, says loudly that they did not run, and fails under CI.
 */
export function needs(what, present, register, install) {
  if (present) {
    register();
    return;
  }
  const notice = `${what} is not installed: its tests did NOT run (${install})`;
  console.error(`\n${notice}\n`);
  if (process.env.CI) test(`${what} is installed (required under CI)`, () => assert.fail(notice));
}

/**
 * The suites that also run under Bun (`bun test`) and Deno (`deno test`),
 * whose node:test, node:http, node:http2 and fetch they exercise: the
 * fetch-style form, the node:http and node:http2 forms, Channel (in
 * process and through Redis), faults and bad input. Not here: direct
 * (Rust writing to sockets is Node's path: under Bun and Deno a socket has
 * no descriptor, and streams go through the response), frameworks (it
 * checks that path), and the suites that start Node programs or packages
 * (demo, examples, package, soak, chromium, bun, deno).
 */
export const PORTABLE_SUITES = [
  'api',
  'wire',
  'fetch',
  'eventsource',
  'backpressure',
  'bad-input',
  'bad-input-matrix',
  'ids-headers',
  'shutdown',
  'http2',
  'faults',
  'transport',
  'budget',
  'two-copies',
  'module',
  'koa',
  'channel',
  'redis',
  'redis-guarantees',
  'redis-production',
  'stop-tokens',
].map((name) => `./__test__/${name}.test.mjs`);

/** The kernel's socket of this server for the client's connection, as
 * { state, queued } (state in hex, as /proc/net/tcp has it: 04 FIN-WAIT-1),
 * or null once it is gone. */
export function serverSocket(serverPort, clientPort) {
  const hex = (port) => port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 5) continue;
    if (cols[1].endsWith(`:${hex(serverPort)}`) && cols[2].endsWith(`:${hex(clientPort)}`)) {
      return { state: cols[3], queued: Number.parseInt(cols[4].split(':')[0], 16) };
    }
  }
  return null;
}
