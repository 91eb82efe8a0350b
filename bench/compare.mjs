// npm run compare: native-sse beside better-sse, hono's streamSSE and
// @fastify/sse, each through its own API in a process of its own
// (compare-server.mjs), read by raw sockets on 127.0.0.1: what each does
// with input that would corrupt a stream, and with a client that never
// reads. Prints the table of docs/choosing.md.
import { fork } from 'node:child_process';
import net from 'node:net';
import { parseEventStream, RawClient, until } from '../__test__/helpers.mjs';

const LIBRARIES = ['native-sse', 'better-sse', 'hono', '@fastify/sse'];

function next(child, type) {
  return new Promise((resolve, reject) => {
    child.on('message', (message) => message.type === type && resolve(message));
    child.once('exit', (code) => reject(new Error(`the server exited (${code})`)));
  });
}

/** What a client decodes from GET /bad. */
async function badProbe(port) {
  const client = RawClient.connect(port, { path: '/bad' });
  try {
    // "end", or "\"end\"" from a library that sends strings as JSON.
    const ended = () => parseEventStream(client.body).events.some((e) => e.data.replaceAll('"', '') === 'end');
    await until(ended, 10_000, 'the end of /bad');
    return parseEventStream(client.body).events;
  } finally {
    client.destroy();
  }
}

/** Opens GET /slow and never reads. */
function slowProbe(port) {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write('GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
  socket.pause();
  return socket;
}

async function measure(library) {
  const server = fork(new URL('./compare-server.mjs', import.meta.url), [library], { stdio: 'ignore' });
  server.on('error', () => {});
  try {
    const { port } = await next(server, 'port');
    const events = await badProbe(port);
    const socket = slowProbe(port);
    await new Promise((resolve) => setTimeout(resolve, 6_500));
    socket.destroy();
    server.send({ type: 'report' });
    const { results } = await next(server, 'report');
    return { events, ...results };
  } finally {
    if (server.connected) server.send({ type: 'exit' });
    server.kill();
  }
}

/** How a library dealt with one piece of bad input, from both ends. */
function verdict(refused, injected) {
  if (refused) return 'refused (error)';
  return injected ? '**stream corrupted**' : 'sent, harmless';
}

const rows = [];
for (const library of LIBRARIES) {
  process.stderr.write(`${library}…\n`);
  const { events, bad, slow } = await measure(library);
  const injected = events.some((e) => e.type === 'injected' || e.data.includes('injected'));
  const cr = events.find((e) => e.data === 'a\nb' || e.data === '"a\\rb"' || e.data === 'a');
  const object = events.find((e) => e.data.includes('"a":1') || e.data === '[object Object]');
  const crVerdict = bad.dataCR
    ? 'refused (error)'
    : cr === undefined
      ? 'nothing'
      : cr.data === 'a\nb'
        ? 'two lines, as sent'
        : cr.data === 'a'
          ? '**"a": the rest lost**'
          : 'sent as JSON, intact';
  rows.push([
    library,
    verdict(bad.eventLF, injected && events.some((e) => e.type === 'injected')),
    verdict(bad.idLF, injected && events.some((e) => e.data.includes('injected'))),
    crVerdict,
    bad.object ? 'refused (error)' : object ? JSON.stringify(object.data) : 'nothing',
    `${slow.acceptedMiB.toFixed(1)} MiB${slow.held ? ', then held back' : ''}; RSS +${slow.rssGrowthMiB.toFixed(0)} MiB`,
    `${slow.cutOff ? `cut off (slow consumer) after ${slow.firedMiB.toFixed(0)} MiB` : `all ${slow.firedMiB.toFixed(0)} MiB taken`}; RSS +${slow.firedRssGrowthMiB.toFixed(0)} MiB`,
  ]);
}
console.log(
  '| library | event name with LF | id with LF | data with CR | an object as data | a client that never reads, each send awaited (3 s) | then sends not awaited (2 s) |',
);
console.log('|---|---|---|---|---|---|---|');
for (const row of rows) console.log(`| ${row.join(' | ')} |`);
