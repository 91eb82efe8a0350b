'use strict';

const { ServerResponse } = require('node:http');
const native = require('../binding.js');
const outbox = require('./outbox.js');
const { CloseEvent } = require('./close-event.js');
const { normalizeOptions, optionalString, requiredString, invalid } = require('./options.js');

const RESOLVED = Promise.resolve();
const noop = () => {};

function isObject(value) {
  return value !== null && typeof value === 'object';
}

function isNodeRequest(value) {
  return isObject(value) && isObject(value.headers) && !(typeof Request === 'function' && value instanceof Request);
}

function isNodeResponse(value) {
  return (
    isObject(value) &&
    typeof value.writeHead === 'function' &&
    typeof value.setHeader === 'function' &&
    typeof value.write === 'function' &&
    typeof value.end === 'function' &&
    typeof value.on === 'function'
  );
}

/** What `native.send` returns when a frame would pass the buffer's cap. */
const OVERFLOW = -1;

function closedError(reason) {
  const err = new Error(`Cannot send: the event stream is closed (${reason})`);
  err.code = reason === 'slow consumer' ? 'ERR_SSE_SLOW_CONSUMER' : 'ERR_SSE_CLOSED';
  return err;
}

/** Marks a rejection as handled, so that a sender that does not await cannot
 * crash the process with an unhandled rejection, while one that awaits
 * still sees it. */
function handled(promise) {
  promise.catch(noop);
  return promise;
}

// The last frame sent on this thread, by value. Looping one event over many
// endpoints is the common way to fan out; when the next send is the same
// event, the frame Rust encoded last is queued again instead of passing the
// strings and encoding them once per endpoint. Any failed call forgets it.
let lastData;
let lastEvent;
let lastId;

/** The user's extra headers, which may override the defaults but never the
 * content type that makes this an event stream. */
function setExtraHeaders(response, headers) {
  if (headers === undefined) return;
  for (const [name, value] of headers) {
    if (name.toLowerCase() !== 'content-type') response.setHeader(name, value);
  }
}

/**
 * The socket of a chunked HTTP/1.1 response whose headers have gone out, if
 * flushes may be written to it directly, as ready-framed chunks: one socket
 * write per flush instead of the three that `res.write` makes, and none of
 * its bookkeeping. Only for a plain `ServerResponse` that is the socket's
 * current response and whose `write` nobody replaced (compression
 * middleware does); anything else goes through `res.write`.
 */
function directSocket(response) {
  const socket = response.socket;
  return response instanceof ServerResponse &&
    response.write === ServerResponse.prototype.write &&
    response.chunkedEncoding === true &&
    response.headersSent &&
    socket != null &&
    socket._httpMessage === response &&
    socket.writable
    ? socket
    : null;
}

function lastEventIdOf(request) {
  const value = request.headers['last-event-id'];
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.join(', ');
  return '';
}

/**
 * A Server-Sent Events stream to one client, with the API of
 * `EventEndpoint` from `@ayonli/jsext/sse`. Frames are validated, encoded
 * and queued in Rust; this class only holds what JavaScript must hold: the
 * response object and the `EventTarget` it inherits from.
 */
class EventEndpoint extends EventTarget {
  #response = null;
  #slot = -1;
  #closed = false;
  #closeReason = '';
  #lastEventId = '';
  #highWaterMark = 0;
  /** Where flushes go once known: the response's socket (direct chunks),
   * or the response itself; `undefined` until the first flush. */
  #sink = undefined;
  #keepAlive = 0;
  /** Settlers of the send() calls waiting for the buffer to go down. */
  #waiters = null;

  constructor(request, ...args) {
    super();
    if (!isNodeRequest(request)) {
      if (typeof Request === 'function' && request instanceof Request) {
        throw new TypeError(
          'The "request" argument is a fetch Request, which this version does not support yet: ' +
            'pass the (req, res) of a node:http server',
        );
      }
      throw invalid('request', 'an http.IncomingMessage', request);
    }
    const response = args[0];
    if (!isNodeResponse(response)) {
      throw invalid('response', 'an http.ServerResponse', response);
    }
    const options = normalizeOptions(args[1]);
    if (response.headersSent) {
      throw new TypeError('The "response" argument has already sent its headers');
    }

    this.#response = response;
    this.#lastEventId = lastEventIdOf(request);

    if (this.#lastEventId !== '' && native.isStopToken(this.#lastEventId)) {
      // This client was told to stop. 204 is what makes EventSource give up
      // instead of reconnecting again. The extra headers still go out: a
      // cross-origin client needs its CORS headers to read even a 204.
      this.#closed = true;
      this.#closeReason = 'client was told not to reconnect';
      setExtraHeaders(response, options.headers);
      response.writeHead(204);
      response.end();
      queueMicrotask(() => this.#dispatchClose(true, 'client was told not to reconnect'));
      return;
    }

    response.setHeader('Content-Type', 'text/event-stream');
    response.setHeader('Cache-Control', 'no-cache');
    response.setHeader('X-Accel-Buffering', 'no'); // or nginx buffers the stream
    if (!(request.httpVersionMajor >= 2)) {
      // A connection-specific header: Node refuses it on HTTP/2.
      response.setHeader('Connection', 'keep-alive');
    }
    setExtraHeaders(response, options.headers);
    response.writeHead(200);

    if (request.method === 'HEAD') {
      // A HEAD response has headers only: there is no stream to keep open.
      this.#closed = true;
      this.#closeReason = 'HEAD request';
      response.end();
      queueMicrotask(() => this.#dispatchClose(true, 'HEAD request'));
      return;
    }

    this.#highWaterMark = options.highWaterMark;
    this.#slot = native.openStream(options.reconnectionTime, options.maxBufferedBytes, options.keepAlive);
    outbox.attach(this.#slot, (chunk) => this.#write(chunk));
    outbox.schedule();
    if (options.keepAlive > 0) {
      this.#keepAlive = options.keepAlive;
      outbox.retainKeepAlive(options.keepAlive);
    }

    response.once('close', () => this.#end(true, 'client disconnected'));
    response.on('error', (err) => this.#end(false, err?.message || String(err)));
  }

  /** The `Last-Event-ID` the client sent, then the id of the last event sent. */
  get lastEventId() {
    return this.#lastEventId;
  }

  /** Whether the stream has ended, for whatever reason. */
  get closed() {
    return this.#closed;
  }

  /** The web `Response` of the fetch-style form; `null` for node:http. */
  get response() {
    return null;
  }

  /**
   * Bytes accepted by `send()` and not yet handed to the socket: those
   * queued in Rust plus those the response itself still holds.
   */
  get bufferedAmount() {
    if (this.#closed) return 0;
    return native.bufferedAmount(this.#slot) + (this.#response.writableLength ?? 0);
  }

  /**
   * Sends a `message` event. Resolves at once while less than
   * `highWaterMark` bytes are queued, otherwise once the client has taken
   * enough of them.
   */
  send(data, eventId = undefined) {
    try {
      return this.#enqueue(undefined, data, eventId);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Sends an event that the client receives under the name `event`. */
  sendEvent(event, data, eventId = undefined) {
    try {
      return this.#enqueue(requiredString('event', event), data, eventId);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * A `MessageEvent` is sent to the client: type "message" as `send()`, any
   * other type as `sendEvent()`. Any other event goes to this object's own
   * listeners. Invalid input throws a TypeError; a closed stream is ignored.
   */
  dispatchEvent(event) {
    if (typeof MessageEvent === 'function' && event instanceof MessageEvent) {
      const name = event.type === 'message' ? undefined : event.type;
      // Settled either way; dispatchEvent has no promise to hand back.
      this.#enqueue(name, event.data, event.lastEventId).catch(noop);
      return !event.defaultPrevented;
    }
    return super.dispatchEvent(event);
  }

  /**
   * Ends the stream once what is queued has been written. With
   * `noReconnect`, the client is told not to come back: a reconnect is
   * answered `204 No Content`.
   */
  close(noReconnect = false) {
    if (this.#closed) return;
    const slot = this.#slot;
    // Past its cap a client cannot take the farewell frame; it is ended
    // like any other then.
    if (noReconnect) native.sendStop(slot);
    const rest = native.takeQueued(slot);
    const response = this.#response;
    this.#end(true, noReconnect ? 'closed by the server, no reconnect' : 'closed by the server');
    if (!response.destroyed && !response.writableEnded) {
      if (rest !== null) response.write(rest);
      response.end();
    }
  }

  /**
   * Validates and queues a frame; returns the promise send() hands back.
   * Throws a TypeError for invalid input.
   */
  #enqueue(event, data, eventId) {
    requiredString('data', data);
    const id = optionalString('eventId', eventId) || undefined;
    if (this.#closed) return handled(Promise.reject(closedError(this.#closeReason)));
    let queued;
    if (data === lastData && event === lastEvent && id === lastId) {
      queued = native.sendAgain(this.#slot);
    } else {
      try {
        queued =
          event === undefined ? native.send(this.#slot, data, id) : native.sendEvent(this.#slot, event, data, id);
      } catch (err) {
        lastData = undefined;
        // The core refuses names and ids that would corrupt the stream.
        throw err?.code === 'InvalidArg' ? new TypeError(err.message) : err;
      }
      lastData = data;
      lastEvent = event;
      lastId = id;
    }
    if (queued === OVERFLOW) {
      // The client has fallen a whole cap behind. Cut it off rather than
      // drop frames from the middle of its stream: it reconnects with its
      // Last-Event-ID and can be resumed from there.
      this.#abort('slow consumer');
      return handled(Promise.reject(closedError('slow consumer')));
    }
    if (id !== undefined) this.#lastEventId = id;
    outbox.schedule();
    if (queued < this.#highWaterMark) return RESOLVED;
    return handled(new Promise((resolve, reject) => (this.#waiters ??= []).push({ resolve, reject })));
  }

  /** Writes this stream's share of a flush. */
  #write(chunk) {
    const response = this.#response;
    if (response.destroyed || response.writableEnded) return;
    let sink = this.#sink;
    let written;
    if (sink === undefined) {
      // The first flush (the opening) goes through the response, which sends
      // the headers with it; then the way for the others is chosen.
      written = response.write(chunk);
      sink = this.#sink = directSocket(response) ?? response;
      if (sink !== response) native.setChunked(this.#slot, true);
    } else {
      written = sink.write(chunk);
    }
    if (!written) {
      // Full: queue in Rust (up to the cap) until it drains.
      native.pauseStream(this.#slot);
      sink.once('drain', () => this.#resume());
    }
    // The flush emptied this stream's queue in Rust: waiting sends may go.
    const waiters = this.#waiters;
    if (waiters !== null) {
      this.#waiters = null;
      for (const waiter of waiters) waiter.resolve();
    }
  }

  #resume() {
    if (!this.#closed && native.resumeStream(this.#slot)) outbox.schedule();
  }

  /** Ends the stream on a failure: nothing more is written. */
  #abort(reason) {
    const response = this.#response;
    this.#end(false, reason);
    response.destroy();
  }

  /** The one way a stream ends: frees the slot, then the `close` event. */
  #end(wasClean, reason) {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    native.releaseStream(this.#slot);
    outbox.detach(this.#slot);
    this.#slot = -1;
    if (this.#keepAlive > 0) outbox.releaseKeepAlive(this.#keepAlive);
    const waiters = this.#waiters;
    if (waiters !== null) {
      this.#waiters = null;
      for (const waiter of waiters) waiter.reject(closedError(reason));
    }
    queueMicrotask(() => this.#dispatchClose(wasClean, reason));
  }

  #dispatchClose(wasClean, reason) {
    super.dispatchEvent(new CloseEvent('close', { wasClean, reason, code: 0 }));
  }

  get [Symbol.toStringTag]() {
    return 'EventEndpoint';
  }
}

module.exports = { EventEndpoint, CloseEvent };
