// The implementations under test, behind one small interface:
//   open(req, res) → a stream;  send(stream, data) → maybe a promise.

const RESOLVED = Promise.resolve();

/**
 * The hand-written baseline: what a careful developer writes without a
 * library. Each frame is formatted in JavaScript (line breaks looked for with
 * `indexOf`, a split only when there are some: no regular expression on the
 * hot path) and written with its own `res.write`; `send` waits for `drain`
 * when the response is full.
 */
class BaselineStream {
  #drained = null;

  constructor(req, res) {
    this.res = res;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
      ...(req.httpVersionMajor >= 2 ? {} : { Connection: 'keep-alive' }),
    });
    res.write(': ok\n\n');
  }

  send(data, id) {
    let frame = id ? `id: ${id}\n` : '';
    if (data.indexOf('\n') === -1 && data.indexOf('\r') === -1) frame += `data: ${data}\n`;
    else for (const line of data.split(/\r\n|\r|\n/)) frame += `data: ${line}\n`;
    if (this.res.write(`${frame}\n`)) return this.#drained ?? RESOLVED;
    this.#drained ??= new Promise((resolve) =>
      this.res.once('drain', () => {
        this.#drained = null;
        resolve();
      }),
    );
    return this.#drained;
  }
}

/** Endpoints subscribed to `channel`, which broadcasts. */
async function channelImplementation(channel, options = undefined) {
  const { EventEndpoint } = await import('native-sse');
  return {
    open: (req, res) => {
      const endpoint = new EventEndpoint(req, res, options);
      channel.subscribe(endpoint);
      return endpoint;
    },
    send: (stream, data, id) => stream.send(data, id),
    broadcast: (data) => channel.broadcast(data),
  };
}

export async function loadImplementation(name, params = {}) {
  switch (name) {
    case 'redis-channel': {
      // A Channel backed by a Redis Stream, shared by several processes.
      const { Channel } = await import('native-sse');
      const channel = new Channel({ redis: { url: params.redis, stream: params.stream, maxLen: 100_000 } });
      await channel.ready;
      return channelImplementation(channel);
    }
    case 'native-sse': {
      // As it is by default: a plain HTTP/1.1 connection is adopted (Rust
      // takes it over from Node).
      const { EventEndpoint } = await import('native-sse');
      return {
        open: (req, res) => new EventEndpoint(req, res),
        send: (stream, data, id) => stream.send(data, id),
      };
    }
    case 'direct': {
      // native-sse without adoption (the default before it): Node keeps the
      // connection, Rust writes to its socket on the event loop's thread.
      const { EventEndpoint } = await import('native-sse');
      return {
        open: (req, res) => new EventEndpoint(req, res, { adopt: false }),
        send: (stream, data, id) => stream.send(data, id),
      };
    }
    case 'direct-channel': {
      // The same, with a Channel.
      const { Channel } = await import('native-sse');
      return channelImplementation(new Channel({ historySize: 0 }), { adopt: false });
    }
    case 'channel': {
      // native-sse's Channel: one broadcast call per message, whatever the
      // number of clients (on adopted connections: Rust's threads write).
      const { Channel } = await import('native-sse');
      return channelImplementation(new Channel({ historySize: 0 }));
    }
    case 'jsext': {
      const { EventEndpoint } = await import('@ayonli/jsext/sse');
      return {
        open: (req, res) => new EventEndpoint(req, res),
        send: (stream, data, id) => stream.send(data, id),
      };
    }
    case 'baseline':
      return {
        open: (req, res) => new BaselineStream(req, res),
        send: (stream, data, id) => stream.send(data, id),
      };
    default:
      throw new Error(`unknown implementation ${name}`);
  }
}

export const IMPLEMENTATIONS = ['native-sse', 'channel', 'jsext', 'baseline'];
