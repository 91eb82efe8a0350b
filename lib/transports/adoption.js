'use strict';

const { EventEmitter } = require('node:events');
const codes = require('../codes.js');
const outbox = require('../outbox.js');

// Adoption (the default; `adopt: false` turns it off): Node lets go of a
// connection whose bytes Rust writes already (src/io/direct.rs), and Rust
// alone watches it, writes to it and ends it (src/io/adopted.rs). Node's
// socket, request, response and parser are released: an idle connection
// then costs a fraction of what it costs Node. What depends on Node's internals is here, and only here:
// __test__/adoption.test.mjs checks it under every Node major the suite
// runs on.

/** The `close` listeners Node's HTTP server puts on a connection's socket
 * (lib/_http_server.js), by name; bound functions are named "bound …". */
const NODE_SOCKET_CLOSE = new Set(['socketOnClose', 'onServerResponseClose']);

/** The `finish` listener Node's HTTP server puts on a response, by its
 * names across majors. */
const NODE_RESPONSE_FINISH = new Set(['resOnFinish', 'onResponseFinish']);

const nameOf = (listener) => listener.name.replace(/^bound /, '');

let warnedUnknownInternals = false;

function warnUnknownInternals() {
  if (warnedUnknownInternals) return;
  warnedUnknownInternals = true;
  process.emitWarning(
    `Node ${process.version}'s HTTP server does not listen to its connections as native-sse knows it to: connections are not adopted, their streams stay on the direct path`,
    {
      type: 'NativeSseWarning',
      code: codes.NotAdopted,
      detail:
        "Adoption tells Node's own listeners for a socket's close and a response's finish from the application's by their names (lib/transports/adoption.js); they were not found. Streams work as with adopt: false. Please report the Node version.",
    },
  );
}

/**
 * Why the connection of `response` (a ServerResponse whose socket Rust
 * writes to) cannot be adopted, or null if it can:
 *
 * - `requestUnread`: the request's body is not all read (its bytes would
 *   be Rust's to read, and are the application's);
 * - `readAhead`: Node has read bytes past the request (a pipelined
 *   request), which would be lost;
 * - `idleTimeout`: the socket has an idle timeout (`setTimeout`), which
 *   Rust's writes would not keep from firing;
 * - `nodeInternals`: Node's own listeners for the socket's `close` and the
 *   response's `finish` are not found by the names this module knows (a
 *   Node release that renamed them): letting go would take Node's own
 *   handling for the application's. Said once, by a warning.
 *
 * Listeners for the end (`close` of the request, the response or the
 * socket, `finish` of the response: `on-finished`, loggers, cleanups) do
 * not stand in the way: they are kept and called at the real end (see
 * letGo()).
 */
function whyNotAdoptable(response) {
  const request = response.req;
  const socket = response.socket;
  if (request == null || !request.complete) return 'requestUnread';
  if (pipelinedAfter(request)) return 'readAhead';
  if (socket.timeout > 0) return 'idleTimeout';
  if (
    !socket.rawListeners('close').some((listener) => nameOf(listener) === 'socketOnClose') ||
    !response.rawListeners('finish').some((listener) => NODE_RESPONSE_FINISH.has(nameOf(listener)))
  ) {
    warnUnknownInternals();
    return 'nodeInternals';
  }
  return null;
}

/** Whether Node has read a request after `request` on its connection (a
 * pipelined one), which it serves once the stream ends: the connection is
 * then not adopted, and must not say it closes. */
function pipelinedAfter(request) {
  const socket = request?.socket;
  if (socket == null) return false;
  const incoming = socket.parser?.incoming;
  return socket.readableLength > 0 || (incoming != null && incoming !== request);
}

/** The events that say a connection or its exchange ended, by emitter:
 * what an application, a logger or `on-finished` listens for. */
const END_EVENTS = {
  request: new Set(['close']),
  response: new Set(['close', 'finish']),
  socket: new Set(['close']),
};

/** Whether `listener`, on `emitter` for `event`, is Node's own (it stays:
 * Node's handling of its socket's end is its own business). */
function isNodeListener(emitter, event, listener) {
  const name = nameOf(listener);
  if (event === 'finish') return NODE_RESPONSE_FINISH.has(name);
  return emitter.server !== undefined && NODE_SOCKET_CLOSE.has(name);
}

const { on, once, prependListener, prependOnceListener, removeListener } = EventEmitter.prototype;

/**
 * The listeners for the end of an adopted connection, kept until it
 * really ends: those present when it is let go of, and those added after
 * (in a later turn, after an `await`), which Node's objects, let go of,
 * would never call or would call at once. Each is called once, at the
 * end, in the order it was added; removing one (as `on-finished` does when
 * it is done) takes it out.
 *
 * The base of the connection's AdoptedTransport (./adopted.js), which says
 * when the real end has come (`ended`): an idle adopted connection is one
 * object in JavaScript, not two.
 */
class Later {
  /** [emitter, event, listener] in order; null for none (most
   * connections: one is kept for each adopted connection while it lives). */
  entries = null;
  /** The response's `finished` (as Node's end() sets it): true once the
   * server ended it. */
  responseFinished = false;

  /** Whether the real end has come: listeners added now are Node's to
   * handle (and never called, as for any ended connection). The
   * subclass's to say. */
  get ended() {
    return false;
  }

  add(emitter, event, listener) {
    this.entries ??= [];
    this.entries.push([emitter, event, listener]);
  }

  remove(emitter, event, listener) {
    if (this.entries === null) return false;
    const at = this.entries.findLastIndex(
      ([e, ev, l]) => e === emitter && ev === event && (l === listener || l.listener === listener),
    );
    if (at < 0) return false;
    this.entries.splice(at, 1);
    // Most connections' lists empty again (on-finished takes its own off
    // as it is done): none is kept for them.
    if (this.entries.length === 0) this.entries = null;
    return true;
  }

  /** The listeners of `emitter` for `event` present now, taken off it. */
  takeFrom(emitter, event) {
    for (const listener of emitter.rawListeners(event)) {
      if (isNodeListener(emitter, event, listener)) continue;
      this.add(emitter, event, listener);
      removeListener.call(emitter, event, listener);
    }
  }

  /** Makes `emitter` keep the listeners for `events` added from now on. */
  keep(emitter, events) {
    const later = this;
    const keeping = (add) =>
      function (event, listener) {
        if (!later.ended && events.has(event) && typeof listener === 'function') {
          later.add(this, event, listener);
          return this;
        }
        return add.call(this, event, listener);
      };
    emitter.on = emitter.addListener = keeping(on);
    emitter.once = keeping(once);
    emitter.prependListener = keeping(prependListener);
    emitter.prependOnceListener = keeping(prependOnceListener);
    emitter.removeListener = emitter.off = function (event, listener) {
      if (!later.remove(this, event, listener)) removeListener.call(this, event, listener);
      return this;
    };
  }

  /** The connection ended: `finish` listeners first if the response was
   * ended by the server (all its bytes taken), then every `close`, each
   * once, in the order added. */
  tell(finished) {
    this.responseFinished ||= finished;
    const entries = this.entries ?? [];
    this.entries = null;
    for (const wanted of ['finish', 'close']) {
      if (wanted === 'finish' && !finished) continue;
      for (const [emitter, event, listener] of entries) {
        if (event !== wanted) continue;
        try {
          listener.call(emitter);
        } catch (err) {
          // A listener's fault is the application's: reported as Node
          // would, without ending the stream machinery that calls it.
          process.nextTick(() => {
            throw err;
          });
        }
      }
    }
  }
}

/**
 * Node lets go of the connection of `response`: it reads no more of it,
 * then its socket is destroyed (its descriptor closed; Rust holds its own,
 * so the connection stays open). The listeners for its end (see
 * END_EVENTS) are not told now: those present are taken off, and those
 * added later kept, to be told when the connection really closes
 * (`req.on('close', …)` is the common cleanup; `on-finished`, which
 * loggers use, listens to the socket and the response), but for the
 * transport's own (`ours`), which are dropped. Until then the socket reads
 * as open (`writable`, `readable`: what `on-finished` asks), and the
 * response as not finished.
 *
 * @param {Later} later the connection's transport, which keeps them and
 *   tells them at the end
 */
function letGo(response, ours, later) {
  const request = response.req;
  const socket = response.socket;
  for (const [emitter, events] of [
    [request, END_EVENTS.request],
    [response, END_EVENTS.response],
    [socket, END_EVENTS.socket],
  ]) {
    for (const event of events) later.takeFrom(emitter, event);
    later.keep(emitter, events);
  }
  for (const listener of ours) later.remove(response, 'close', listener);
  request.removeAllListeners('error');
  response.removeAllListeners('error');
  for (const property of ['writable', 'readable']) {
    Object.defineProperty(socket, property, { configurable: true, enumerable: true, get: () => !later.ended });
  }
  // A request whose body was not read to its end reads as readable until
  // then (what on-finished asks of a request), as it would on Node's path.
  const unread = request.readable;
  Object.defineProperty(request, 'readable', {
    configurable: true,
    enumerable: true,
    get: () => unread && !later.ended,
  });
  // writableEnded and writableFinished follow it.
  Object.defineProperty(response, 'finished', {
    configurable: true,
    enumerable: true,
    get: () => later.responseFinished,
    set: (finished) => {
      later.responseFinished = finished;
    },
  });
  socket.pause();
  // Node's handling of the socket's close destroys the request with an
  // "aborted" error that no one sees (the request's error listeners are
  // off, its end is the Later's to tell): it is made without a stack,
  // whose capture and formatting took the event loop ~0.036 ms a
  // connection (0.36 s of a 10,000-client reconnect storm, profiled).
  prependListener.call(socket, 'close', noStacks);
  on.call(socket, 'close', stacksBack);
  socket.destroy();
}

/** Error.stackTraceLimit while Node handles a let-go socket's close. */
let stackTraceLimit;

function noStacks() {
  stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  // Put back even if a listener between throws.
  queueMicrotask(stacksBack);
}

function stacksBack() {
  if (stackTraceLimit === undefined) return;
  Error.stackTraceLimit = stackTraceLimit;
  stackTraceLimit = undefined;
}

/** The transport of an adopted connection, on its let-go response and
 * socket (see standIn()). */
const kAdoptedBy = Symbol('native-sse adopted by');

/** Marks a server whose closeAllConnections() drops its adopted
 * connections too. */
const kDropsAdopted = Symbol('native-sse drops adopted connections');

// What the application calls to end a stream behind the endpoint still
// ends it once its connection is adopted: destroy() drops the connection
// (with the error, if one is given), end() ends it cleanly, and what
// write() is given goes into the body after what is queued. Each does
// nothing once the connection is closed.
function destroyAdopted(err) {
  this[kAdoptedBy]?.dropAdopted(err);
  return this;
}

function writeAdopted(chunk, encoding, callback) {
  if (typeof encoding === 'function') [callback, encoding] = [encoding, undefined];
  const written = this[kAdoptedBy]?.writeAdoptedBehind(chunk, encoding) ?? false;
  if (typeof callback === 'function') process.nextTick(callback, written ? null : new Error('not written'));
  return written;
}

function endAdopted(...args) {
  const callback = args.findLast((arg) => typeof arg === 'function');
  this[kAdoptedBy]?.endAdoptedBehind();
  if (callback !== undefined) process.nextTick(callback);
  return this;
}

/** `server`, if it has a closeAllConnections() (made, with its first
 * adopted connection, to drop those too: they are found among this copy
 * of the module's adopted connections, ../outbox.js), else null. */
function serverOf(socket) {
  const server = socket.server;
  if (server == null || typeof server.closeAllConnections !== 'function') return null;
  if (server[kDropsAdopted] === undefined) {
    server[kDropsAdopted] = true;
    const closeAllConnections = server.closeAllConnections;
    server.closeAllConnections = function (...args) {
      for (const transport of outbox.adoptedOf(server)) transport.dropAdopted();
      return closeAllConnections.apply(this, args);
    };
  }
  return server;
}

/** Makes `destroy()`, `end()` and `write()` of the let-go response and
 * socket reach `transport` (an AdoptedTransport) until it is closed. Not the
 * request's: Node destroys it as the socket closes. The response's and
 * socket's are replaced once Node's own handling of the socket's close is
 * done, as it follows letGo(). The transport holds neither the response nor
 * the socket: an application that keeps them keeps the transport, not the
 * other way round. */
function standIn(response, socket, transport) {
  // EventEmitter's own on (the socket's is the keeper's, letGo(), and
  // EventEmitter's once calls it): the socket closes once.
  on.call(socket, 'close', () => {
    if (!transport.reachable) return;
    for (const target of [response, socket]) {
      target[kAdoptedBy] = transport;
      target.destroy = destroyAdopted;
      target.end = endAdopted;
      target.write = writeAdopted;
    }
  });
}

module.exports = { Later, whyNotAdoptable, pipelinedAfter, letGo, serverOf, standIn };
