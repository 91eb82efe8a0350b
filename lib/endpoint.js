'use strict';

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

/** The rejection of a send after close: marked as handled, so that a sender
 * that does not await cannot crash the process with an unhandled rejection,
 * while one that awaits still sees it. */
function closedRejection() {
  const err = new Error('Cannot send: the event stream is closed');
  err.code = 'ERR_SSE_CLOSED';
  const promise = Promise.reject(err);
  promise.catch(noop);
  return promise;
}

/** The user's extra headers, which may override the defaults but never the
 * content type that makes this an event stream. */
function setExtraHeaders(response, headers) {
  if (headers === undefined) return;
  for (const [name, value] of headers) {
    if (name.toLowerCase() !== 'content-type') response.setHeader(name, value);
  }
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
  #lastEventId = '';

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

    this.#slot = native.openStream(options.reconnectionTime);
    outbox.attach(this.#slot, (chunk) => this.#write(chunk));
    outbox.schedule();

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

  /** Bytes accepted by `send()` and not yet handed to the response. */
  get bufferedAmount() {
    return this.#closed ? 0 : native.bufferedAmount(this.#slot);
  }

  /** Sends a `message` event. */
  send(data, eventId = undefined) {
    try {
      return this.#enqueue(undefined, data, eventId) ? RESOLVED : closedRejection();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Sends an event that the client receives under the name `event`. */
  sendEvent(event, data, eventId = undefined) {
    try {
      return this.#enqueue(requiredString('event', event), data, eventId) ? RESOLVED : closedRejection();
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
      this.#enqueue(name, event.data, event.lastEventId);
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
    if (noReconnect) native.sendStop(slot);
    const rest = native.takeQueued(slot);
    const response = this.#response;
    this.#end(true, noReconnect ? 'closed by the server, no reconnect' : 'closed by the server');
    if (!response.destroyed && !response.writableEnded) {
      if (rest !== null) response.write(rest);
      response.end();
    }
  }

  /** Validates and queues a frame. Returns false if the stream is closed. */
  #enqueue(event, data, eventId) {
    requiredString('data', data);
    const id = optionalString('eventId', eventId);
    if (this.#closed) return false;
    try {
      if (event === undefined) native.send(this.#slot, data, id);
      else native.sendEvent(this.#slot, event, data, id);
    } catch (err) {
      // The core refuses names and ids that would corrupt the stream.
      throw err?.code === 'InvalidArg' ? new TypeError(err.message) : err;
    }
    if (id) this.#lastEventId = id;
    outbox.schedule();
    return true;
  }

  #write(chunk) {
    const response = this.#response;
    if (!response.destroyed && !response.writableEnded) response.write(chunk);
  }

  /** The one way a stream ends: frees the slot, then the `close` event. */
  #end(wasClean, reason) {
    if (this.#closed) return;
    this.#closed = true;
    native.releaseStream(this.#slot);
    outbox.detach(this.#slot);
    this.#slot = -1;
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
