// Type-checked by `npm test` (tsc --noEmit): the README's usage must compile
// against index.d.ts, and misuse must not.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import { EventEndpoint, isSseError, type CloseEvent, type EventEndpointOptions, type SendAllResult } from 'native-sse';

const options: EventEndpointOptions = { reconnectionTime: 3000, headers: { 'Access-Control-Allow-Origin': '*' } };

http.createServer(async (req, res) => {
  const events = new EventEndpoint(req, res, options);
  events.addEventListener('close', (ev) => {
    const clean: boolean = ev.wasClean;
    const reason: string = ev.reason;
    const code: number = ev.code;
    console.log(clean, reason, code);
  });
  events.addEventListener('close', (ev: CloseEvent) => void ev, { once: true });
  const dispatched: boolean = events.dispatchEvent(
    new MessageEvent('my-event', { data: 'Hello, World!', lastEventId: '1' }),
  );
  await events.send('plain message', '2');
  await events.sendEvent('tick', 'line one\nline two');
  const id: string = events.lastEventId;
  const closed: boolean = events.closed;
  const buffered: number = events.bufferedAmount;
  const response: null = events.response;
  console.log(dispatched, id, closed, buffered, response);
  events.close(true);

  // Objects go as JSON; what JSON cannot say does not type.
  await events.send({ price: 42, at: [1, 2] });
  // @ts-expect-error undefined is no data
  void events.send(undefined);
  const result: SendAllResult = await events.sendAll(
    (async function* () {
      yield { token: 'a' };
    })(),
    { event: 'token', id: (item, index) => `${item.token}-${index}` },
  );
  console.log(result.complete, events.signal.aborted);
  try {
    await events.send('x');
  } catch (err) {
    if (isSseError(err, 'ERR_SSE_CLOSED')) {
      const code: 'ERR_SSE_CLOSED' = err.code;
      console.log(code);
    }
  }
  // @ts-expect-error the event name comes first
  void events.sendEvent('tick');
  // @ts-expect-error reconnectionTime is a number
  new EventEndpoint(req, res, { reconnectionTime: '3s' });
  // @ts-expect-error a Node request needs its response
  new EventEndpoint(req);
  // @ts-expect-error a Node request needs its response, not options
  new EventEndpoint(req, { keepAlive: 1000 });
  // Headers as an object, a Headers or pairs.
  new EventEndpoint(req, res, { headers: [['X-A', 'a']] });
  new EventEndpoint(req, res, { headers: new Headers({ 'X-A': 'a' }) });
  // @ts-expect-error a Map is not headers
  new EventEndpoint(req, res, { headers: new Map([['X-A', 'a']]) });
});

const target: EventTarget = new EventEndpoint(
  new http.IncomingMessage(null as never),
  new http.ServerResponse(null as never),
);
void target;

// The fetch-style form: `response` is a web Response.
export function fetchHandler(request: Request): Response {
  const events = new EventEndpoint(request, { keepAlive: 10_000 });
  void events.send('hello');
  const response: Response = events.response;
  // @ts-expect-error a web Request's response is its own: no Node response
  new EventEndpoint(request, new http.ServerResponse(null as never));
  return response;
}

// node:http2, compatibility API.

http2.createServer((req, res) => {
  const events = new EventEndpoint(req, res, { highWaterMark: 16_384, maxBufferedBytes: 1 << 20 });
  const response: null = events.response;
  void response;
});

// Channel.
import { Channel, type ChannelReplay } from 'native-sse';
const channel = new Channel({ historySize: 100 });
http.createServer((req, res) => {
  const replay: ChannelReplay = channel.subscribe(new EventEndpoint(req, res));
  const complete: boolean = replay.complete;
  void complete;
});
channel.broadcast('price', { event: 'quote', id: '1' });
const size: number = channel.size;
void size;
// @ts-expect-error the id goes in the options
channel.broadcast('price', '1');
// A channel per room, dropped once its last endpoint has left.
const rooms = new Map<string, typeof channel>();
const room = new Channel();
rooms.set('lobby', room);
room.addEventListener('empty', (ev: Event) => {
  void ev.type;
  rooms.delete('lobby');
});

// Diagnostics.
import { diagnostics } from 'native-sse';
const { openStreams, keepAliveTimer, skippedStreamEntries } = diagnostics();
void skippedStreamEntries;
const streamsOpen: number = openStreams;
const timer: boolean = keepAliveTimer;
void streamsOpen;
void timer;

// A Redis-backed Channel.
export async function shared(endpoint: EventEndpoint): Promise<string> {
  const news = new Channel({ redis: { url: 'redis://127.0.0.1:6379', stream: 'news', maxLen: 1000 } });
  await news.ready;
  const replay: ChannelReplay = await news.subscribe(endpoint);
  void replay;
  const hadStream: boolean = await news.deleteHistory();
  const hadHistory: boolean = await channel.deleteHistory();
  void [hadStream, hadHistory];
  // @ts-expect-error the ids of a Redis-backed channel are the stream's
  await news.broadcast('x', { id: '1' });
  try {
    return await news.broadcast('headline', { event: 'news' });
  } catch (err) {
    const code = (err as RedisPublishError).code;
    if (code === 'ERR_SSE_REDIS_NOT_APPENDED') return news.broadcast('headline', { event: 'news' });
    throw err;
  }
}

// Production Redis: TLS with a private CA and a client certificate.
export const secure = new Channel({
  redis: {
    url: 'rediss://redis.internal:6380',
    stream: 'news',
    tls: { ca: '-----BEGIN CERTIFICATE-----', cert: Buffer.from(''), key: '' },
  },
});
// @ts-expect-error a CA is PEM text or bytes
new Channel({ redis: { url: 'rediss://h', stream: 's', tls: { ca: 42 } } });

// Stop tokens shared by a deployment without Redis.
import { configureStopTokens, type RedisPublishError } from 'native-sse';
configureStopTokens({ key: 'a secret of at least thirty-two bytes!', maxAge: 60 * 60 * 1000 });

// Error codes to match on.
import type { SseErrorCode } from 'native-sse';
export function retriable(err: { code?: string }): boolean {
  const code = err.code as SseErrorCode;
  return code === 'ERR_SSE_REDIS_NOT_APPENDED';
}

// Graceful shutdown.
import { closeAll } from 'native-sse';
process.on('SIGTERM', async () => {
  const { closed, dropped }: { closed: number; dropped: boolean } = await closeAll({
    reconnectWindow: 10_000,
    timeout: 5_000,
  });
  void closed;
  void dropped;
});
new Channel({ historySize: 100, incompleteEvent: 'resync' });

import { setMemoryBudget } from 'native-sse';
setMemoryBudget(256 * 1024 * 1024);
const { heldBytes, memoryBudget } = diagnostics();
void heldBytes;
void memoryBudget;

const { streamsClosed, bytesWritten } = diagnostics();
const bySlowness: number = streamsClosed.slowConsumer;
void bySlowness;
void bytesWritten;
