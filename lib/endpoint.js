'use strict';

const native = require('./native.js');
const outbox = require('./outbox.js');
const metrics = require('./diagnostics/metrics.js');
const { CloseEvent } = require('./close-event.js');
const { NodeTransport, mayAdopt } = require('./transports/node.js');
const { WebTransport } = require('./transports/web.js');
const { CloseReason } = require('./close-reasons.js');
const { IS_DENO } = require('./runtime.js');
const { LazyEventTarget } = require('./listeners.js');
const sendAll = require('./send-all.js');
const { fingerprintOf, mark, takeMark } = require('./stop-marks.js');
const { normalizeOptions, optionsObject, optionalString, requiredString, eventData, count } = require('./options.js');
const { checkId, largest, handled, invalid, invalidValue, fromNative, tooLarge, closedError } = require('./errors.js');
const {
  isWebRequest,
  isNodeRequest,
  isNodeResponse,
  streamHeaders,
  userHeaders,
  lastEventIdOf,
  breakingHeader,
} = require('./request.js');
const {
  kSlot,
  kCloseTimeout,
  kJoin,
  kLeave,
  kAbort,
  kDrop,
  kLastId,
  kResumeFrom,
  kWhenWritable,
  kRoom,
  kShutdown,
  kDestroy,
  kFlushed,
  kDrained,
  kFailed,
  kCutOff,
  kOnDrain,
  kOnGone,
  kAdopted,
  kTransport,
  kDispatchOwn,
  nextSequence,
} = require('./internal.js');

const RESOLVED = Promise.resolve();
// What native.send and native.sendAgain return besides a byte count.
const { SEND_OVERFLOW, SEND_TOO_LARGE, SEND_STALE } = native;
const noop = () => {};
const SEND_NAMES = { data: 'data', event: 'event', id: 'eventId' };

// The last frame this copy of the module sent, by value. Looping one event
// over many endpoints is the common way to fan out; when the next send is
// the same event, the frame Rust encoded last is queued again instead of
// passing the strings and encoding them once per endpoint. Rust checks that
// the frame it holds is this copy's (see src/core/last_frame.rs); any failed call
// forgets it here.
let lastData;
let lastEvent;
let lastId;

/**
 * The response and the options of `new EventEndpoint(request, ...args)`:
 * `(request, response, options?)` for node:http and node:http2,
 * `(request, options?)` for a web `Request`. Throws a TypeError naming
 * the argument, before any byte is written.
 */
function argumentsOf(request, args) {
  let response = null;
  let options;
  if (isWebRequest(request)) {
    // A web Request's response is the endpoint's own (`endpoint.response`):
    // a Node response here would be read as options and never written.
    if (isNodeResponse(args[0])) {
      throw invalidValue(
        'options',
        'is a Node response: a web Request takes (request, options?), and its Response is endpoint.response',
      );
    }
    if (args.length > 1) throw invalidValue('options', 'is the last argument with a web Request: (request, options?)');
    options = normalizeOptions(args[0]);
  } else if (isNodeRequest(request)) {
    response = args[0];
    if (!isNodeResponse(response)) {
      throw invalid(
        'response',
        'an http.ServerResponse or http2.Http2ServerResponse (a Node request takes (request, response, options?))',
        response,
      );
    }
    options = normalizeOptions(args[1]);
    if (response.headersSent) throw invalidValue('response', 'has already sent its headers');
  } else {
    throw invalid('request', 'an http.IncomingMessage, http2.Http2ServerRequest or Request', request);
  }
  // HTTP/2 responses (compat API) refuse connection-specific headers.
  const broken = breakingHeader(options.headers, { http2: response !== null && request.httpVersionMajor >= 2 });
  if (broken !== null)
    throw invalidValue(`options.headers.${broken}`, 'would break the event stream: it cannot be set');
  return { response, options };
}

/** Whether the response is a node:http HTTP/1.x one (which gets the
 * headers only HTTP/1.1 has). */
function isHttp1(request, response) {
  return response !== null && !(request.httpVersionMajor >= 2);
}

/** What few endpoints need, on an object of its own made when first
 * needed: a web `Response`, the reason the stream ended, whether close()
 * ended it (for metrics), the settlers of the send() calls waiting for its
 * buffer to go down, and the controller behind `signal`. */
class Extra {
  webResponse = null;
  closeReason = '';
  closingByServer = false;
  waiters = null;
  aborter = null;
}

/** The settings an endpoint reads after it opens, shared by endpoints
 * that have the same (nearly all have the defaults): each holds one
 * reference instead of four numbers. At most SETTINGS_KEPT are shared;
 * past that, each endpoint gets its own. */
const NO_SETTINGS = Object.freeze({ highWaterMark: 0, maxBufferedBytes: 0, keepAlive: 0, closeTimeout: 0 });
const SETTINGS_KEPT = 64;
const sharedSettings = new Map();

function settingsOf({ highWaterMark, maxBufferedBytes, keepAlive, closeTimeout }) {
  const key = `${highWaterMark} ${maxBufferedBytes} ${keepAlive} ${closeTimeout}`;
  let settings = sharedSettings.get(key);
  if (settings === undefined) {
    settings = Object.freeze({ highWaterMark, maxBufferedBytes, keepAlive, closeTimeout });
    if (sharedSettings.size < SETTINGS_KEPT) sharedSettings.set(key, settings);
  }
  return settings;
}

/**
 * A Server-Sent Events stream to one client, with the API of
 * `EventEndpoint` from `@ayonli/jsext/sse`. Frames are validated, encoded
 * and queued in Rust; this class only holds what JavaScript must hold: the
 * transport to the client and the `EventTarget` it inherits from.
 */
class EventEndpoint extends LazyEventTarget {
  #transport = null;
  /** Its stream's slot in Rust; -1 before the stream opens and once it
   * has ended (or if it never opens: a HEAD request, a client told to
   * stop), which is what closed means. */
  #slot = -1;
  #lastEventId = '';
  /** When #lastEventId was set, to compare with the channels' last ids. */
  #lastEventSequence = 0;
  /** #lastEventId is a Redis stream's id: Rust may have a composite one. */
  #lastFromStream = false;
  /** The Last-Event-ID the request carried. */
  #resumeFrom = '';
  /** Who the client is, for jsext's mark (./stop-marks.js's
   * fingerprintOf(): two small integers). */
  #fingerprintHigh = 0;
  #fingerprintLow = 0;
  /** The channels this endpoint is subscribed to, or null. */
  #channels = null;
  /** The id of the last event this endpoint sent itself (not a channel). */
  #ownLastId = '';
  /** Its highWaterMark, maxBufferedBytes, keepAlive and closeTimeout, as
   * endpoints with the same ones share them (see settingsOf()). */
  #settings = NO_SETTINGS;
  /** What few endpoints need, made when first needed (see Extra): an idle
   * endpoint holds nothing it need not. */
  #extra = null;

  #more() {
    this.#extra ??= new Extra();
    return this.#extra;
  }

  /** Derived, not kept: one field fewer per idle client. */
  get #closed() {
    return this.#slot === -1;
  }

  constructor(request, ...args) {
    super();
    const { response, options } = argumentsOf(request, args);
    this.#lastEventId = lastEventIdOf(request);
    this.#resumeFrom = this.#lastEventId;
    // A client told to stop by close(true) is refused with 204, which makes
    // EventSource give up instead of reconnecting again.
    // So is one whose id a close(true) marked, as jsext answers it (once).
    const stopped =
      this.#lastEventId !== '' && (native.isStopToken(this.#lastEventId) || takeMark(request, this.#lastEventId));
    if (stopped || request.method === 'HEAD') {
      this.#answerOnly(request, response, options, stopped);
      return;
    }
    [this.#fingerprintHigh, this.#fingerprintLow] = fingerprintOf(request);
    this.#open(request, response, options);
  }

  /** Answers with headers only: `204` to a client told to stop, or the
   * stream's headers to a HEAD request (there is no stream to keep open). */
  #answerOnly(request, response, options, stopped) {
    const status = stopped ? 204 : 200;
    // A 204 still carries the extra headers: a cross-origin client needs
    // its CORS headers to read even that.
    const headers = stopped
      ? userHeaders(options.headers)
      : streamHeaders(options.headers, { http1: isHttp1(request, response) });
    if (response === null) {
      this.#more().webResponse = new Response(null, { status, headers });
    } else {
      for (const [name, value] of headers) response.setHeader(name, value);
      response.writeHead(status);
      response.end();
    }
    if (stopped) metrics.refused();
    const reason = stopped ? CloseReason.ToldNotToReconnect : CloseReason.HeadRequest;
    this.#more().closeReason = reason;
    queueMicrotask(() => this.#dispatchClose(true, reason));
  }

  /** Sends the stream's headers and opens its stream in Rust. */
  #open(request, response, options) {
    const headers = streamHeaders(options.headers, {
      http1: isHttp1(request, response),
      closes: options.adopt && mayAdopt(request),
    });
    if (response === null) {
      this.#transport = new WebTransport(this);
      if (options.adopt) metrics.notAdopted('webResponse');
      this.#more().webResponse = new Response(this.#transport.body, { status: 200, headers });
      // A client that leaves cancels the body; the request's signal says
      // so sooner where that is all it means. (Deno's also aborts on every
      // successful response, and warns that it does: there the body's
      // cancel is the signal.)
      if (!IS_DENO)
        request.signal?.addEventListener('abort', () => this.#end(true, CloseReason.ClientDisconnected), {
          once: true,
        });
    } else {
      for (const [name, value] of headers) response.setHeader(name, value);
      response.writeHead(200);
    }
    this.#settings = settingsOf(options);
    const slot = native.openStream({
      owner: outbox.owner,
      retry: options.reconnectionTime,
      maxBufferedBytes: options.maxBufferedBytes,
      keepAlive: options.keepAlive,
    });
    this.#slot = slot;
    // The endpoint is its transport's events and its stream's sink: no
    // closures made per stream (an idle one holds nothing it need not).
    if (response !== null) this.#transport = new NodeTransport(slot, response, this, options);
    metrics.opened();
    outbox.attach(slot, this);
    outbox.schedule();
    if (options.keepAlive > 0) outbox.retainKeepAlive(options.keepAlive);
  }

  /** The `Last-Event-ID` the client sent, then the id of the last event
   * sent, by this endpoint or by a channel it is subscribed to. */
  get lastEventId() {
    let id = this.#lastEventId;
    let fromStream = this.#lastFromStream;
    if (this.#channels !== null) {
      let latest = this.#lastEventSequence;
      for (const channel of this.#channels) {
        const [channelId, sequence, ofStream] = channel[kLastId]();
        if (sequence > latest) {
          id = channelId;
          latest = sequence;
          fromStream = ofStream;
        }
      }
    }
    // An endpoint on several Redis-backed channels is sent composite ids,
    // one per client, kept in Rust (src/core/topics.rs).
    if (fromStream && this.#slot >= 0) return native.topicsId(this.#slot) ?? id;
    return id;
  }

  /** Whether the stream has ended, for whatever reason. */
  get closed() {
    return this.#closed;
  }

  /** Aborted when the stream ends, whatever ended it; its `reason` is the
   * error a `send()` then rejects with (`ERR_SSE_CLOSED`, or
   * `ERR_SSE_SLOW_CONSUMER`). For work that should stop with the client. */
  get signal() {
    const extra = this.#more();
    if (extra.aborter === null) {
      extra.aborter = new AbortController();
      if (this.#closed) extra.aborter.abort(closedError(extra.closeReason));
    }
    return extra.aborter.signal;
  }

  /** The web `Response` to return from a fetch-style handler; `null` when
   * the endpoint was made from a node:http or node:http2 request. */
  get response() {
    return this.#extra?.webResponse ?? null;
  }

  /**
   * Bytes accepted by `send()` and not yet handed to the client: those
   * queued in Rust plus those the response itself still holds.
   */
  get bufferedAmount() {
    if (this.#closed) return 0;
    return native.bufferedAmount(this.#slot) + this.#transport.buffered;
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
   * Sends everything `source` yields (an async iterable, an iterable, a
   * Node `Readable` or a web `ReadableStream`), one event an item, at the
   * client's pace. When the stream ends first (the client left, or it was
   * closed), or `options.signal` aborts, the source is stopped (its
   * iterator's `return()`) and the promise resolves with `complete: false`.
   */
  sendAll(source, options = undefined) {
    let checked;
    try {
      checked = sendAll.optionsOf(options, 'sendAll()');
    } catch (err) {
      return Promise.reject(err);
    }
    const signals = checked.signal === undefined ? [this.signal] : [this.signal, checked.signal];
    const send = (data, event, id) => this.#enqueue(optionalString('options.event', event), data, id);
    return sendAll.sendAll(source, checked, signals, send, () => this.#closed);
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
    if (noReconnect) {
      // The client is told to stop. One that is behind (highWaterMark or
      // more waiting) is not made to take its backlog first: what is still
      // queued is dropped, so that the farewell frame goes out next. One
      // that keeps up gets what was sent, then the farewell. (Past its cap a
      // client cannot take even that; it is ended like any other then.)
      if (native.bufferedAmount(slot) >= this.#settings.highWaterMark) native.takeQueued(slot);
      native.sendStop(slot);
      // jsext's mark: the last id this endpoint sent itself, or, if it sent
      // none and never joined a channel, the one its request carried.
      // Kept for this client only (its fingerprint), never for another
      // that holds the same id.
      mark(
        [this.#fingerprintHigh, this.#fingerprintLow],
        this.#ownLastId !== '' || this.#channels !== null ? this.#ownLastId : this.#resumeFrom,
      );
    }
    const transport = this.#transport;
    // Before the slot goes: Rust may hold bytes it is writing to the socket
    // (given back, to go first), or own the connection (it ends it, with
    // what is queued).
    transport.reclaim();
    const rest = native.takeQueued(slot);
    this.#more().closingByServer = true;
    this.#end(true, noReconnect ? CloseReason.ClosedNoReconnect : CloseReason.ClosedByServer);
    // A client that does not take the rest within closeTimeout is dropped:
    // every close finishes, and releases its connection.
    transport.end(rest, this.#settings.closeTimeout);
  }

  /**
   * Validates and queues a frame; returns the promise send() hands back.
   * Throws a TypeError for invalid input.
   */
  #enqueue(event, value, eventId) {
    const data = eventData('data', value);
    const id = checkId('eventId', optionalString('eventId', eventId) || undefined);
    if (this.#closed) return handled(Promise.reject(closedError(this.#extra?.closeReason ?? '')));
    let queued = SEND_STALE;
    if (data === lastData && event === lastEvent && id === lastId) queued = native.sendAgain(this.#slot) ?? SEND_STALE;
    if (queued === SEND_STALE) {
      try {
        queued = native.send(this.#slot, data, event, id);
      } catch (err) {
        lastData = undefined;
        throw fromNative(err, SEND_NAMES);
      }
      lastData = data;
      lastEvent = event;
      lastId = id;
    }
    if (queued === SEND_TOO_LARGE) {
      // No client could ever take it; the stream itself is fine.
      throw tooLarge(
        largest([
          ['data', data],
          ['event', event],
          ['eventId', id],
        ]),
        this.#settings.maxBufferedBytes,
      );
    }
    if (queued === SEND_OVERFLOW) {
      // The client has fallen a whole cap behind. Cut it off rather than
      // drop frames from the middle of its stream: it reconnects with its
      // Last-Event-ID and can be resumed from there.
      this.#abort(CloseReason.SlowConsumer);
      return handled(Promise.reject(closedError(CloseReason.SlowConsumer)));
    }
    if (id !== undefined) {
      this.#ownLastId = id;
      this.#setLastEventId(id);
    }
    outbox.schedule();
    if (queued < this.#settings.highWaterMark) return RESOLVED;
    return handled(new Promise((resolve, reject) => this.#wait({ resolve, reject })));
  }

  #setLastEventId(id, fromStream = false) {
    this.#lastEventId = id;
    this.#lastFromStream = fromStream;
    this.#lastEventSequence = nextSequence();
  }

  get [kResumeFrom]() {
    return this.#resumeFrom;
  }

  get [kSlot]() {
    return this.#slot;
  }

  get [kCloseTimeout]() {
    return this.#settings.closeTimeout;
  }

  get [kTransport]() {
    return this.#transport;
  }

  /** Joined `channel`; `replayedId` is the id of the last frame it replayed. */
  [kJoin](channel, replayedId, fromStream = false) {
    // From now on, the channel's broadcasts count as this endpoint's ids.
    if (replayedId === undefined) this.#setLastEventId(this.#lastEventId, this.#lastFromStream);
    else this.#setLastEventId(replayedId, fromStream);
    this.#channels ??= new Set();
    this.#channels.add(channel);
  }

  /** Left `channel`: keep the last id it sent here, if it is the latest. */
  [kLeave](channel) {
    this.#keepLastEventId();
    this.#channels.delete(channel);
  }

  /** Keeps what lastEventId says now, as it leaves a channel. */
  #keepLastEventId() {
    const id = this.lastEventId;
    if (id !== this.#lastEventId) this.#setLastEventId(id);
  }

  [kAbort](reason) {
    this.#abort(reason);
  }

  [kShutdown](noReconnect, reconnectWindow) {
    const transport = this.#transport;
    if (!this.#closed && !noReconnect && reconnectWindow > 0) {
      native.sendRetry(this.#slot, Math.floor(Math.random() * reconnectWindow));
    }
    this.close(noReconnect);
    return transport?.finished ?? RESOLVED;
  }

  [kDestroy]() {
    this.#transport?.destroy(CloseReason.CloseAllTimedOut);
  }

  [kRoom]() {
    return this.#closed ? 0 : Math.max(0, this.#settings.maxBufferedBytes - this.bufferedAmount);
  }

  [kWhenWritable]() {
    if (this.#closed || this.bufferedAmount < this.#settings.highWaterMark) return RESOLVED;
    // Settled by the next flush that hands this stream's bytes over, or by
    // the end of the stream (both settle it, neither rejects it here).
    return new Promise((resolve) => this.#wait({ resolve, reject: resolve }));
  }

  /** The transport has room again (see ./transports/contract.js). */
  [kOnDrain]() {
    if (this.#closed) return;
    if (native.resumeStream(this.#slot)) outbox.schedule();
    else this.#releaseWaiters(); // nothing left in Rust: the client took it all
  }

  /** The client or the connection went away. */
  [kOnGone](wasClean, reason) {
    this.#end(wasClean, reason);
  }

  /** Rust adopted the connection: its transport is now `transport`. */
  [kAdopted](transport) {
    this.#transport = transport;
  }

  /** This stream's share of a flush (../outbox.js): to the transport. */
  [kFlushed](chunk) {
    // A full transport: queue in Rust (up to the cap) until it drains.
    if (!this.#transport.write(chunk)) native.pauseStream(this.#slot);
    // The flush emptied this stream's queue in Rust: waiting sends may go,
    // unless what waits behind a replay still fills it.
    if (this.#extra?.waiters != null && native.bufferedAmount(this.#slot) < this.#settings.highWaterMark)
      this.#releaseWaiters();
  }

  /** Rust wrote all this stream's bytes to its socket. */
  [kDrained]() {
    this.#releaseWaiters();
  }

  /** The socket Rust writes to failed. */
  [kFailed]() {
    this.#abort(CloseReason.SocketFailed);
  }

  /** Furthest behind when the thread's memory budget ran out, or its
   * socket stalled: it resumes by Last-Event-ID, like any slow consumer. */
  [kCutOff]() {
    this.#abort(CloseReason.SlowConsumer);
  }

  /** Waits for the client to take what is queued: settled by the next
   * flush that hands this stream's bytes over (or, when Rust writes them
   * to the socket itself, once they have all been written). */
  #wait(waiter) {
    const extra = this.#more();
    extra.waiters ??= [];
    extra.waiters.push(waiter);
    native.watchDrain(this.#slot);
  }

  #releaseWaiters() {
    const waiters = this.#extra?.waiters ?? null;
    if (waiters !== null) {
      this.#extra.waiters = null;
      for (const waiter of waiters) waiter.resolve();
    }
  }

  /** Ends the stream on a failure: nothing more is written. */
  #abort(reason) {
    const transport = this.#transport;
    this.#end(false, reason);
    transport.destroy(reason);
  }

  /** The one way an open stream ends: frees the slot, then the `close` event. */
  #end(wasClean, reason) {
    if (this.#closed) return;
    // Leave the channels first: the slot is about to be reused.
    if (this.#channels !== null) {
      this.#keepLastEventId();
      for (const channel of this.#channels) channel[kDrop](this);
      this.#channels = null;
    }
    const slot = this.#slot;
    this.#slot = -1;
    const extra = this.#more();
    extra.closeReason = reason;
    metrics.closed(extra.closingByServer, wasClean, reason);
    native.releaseStream(slot);
    outbox.detach(slot);
    const { keepAlive } = this.#settings;
    if (keepAlive > 0) outbox.releaseKeepAlive(keepAlive);
    const waiters = extra.waiters;
    if (waiters !== null) {
      extra.waiters = null;
      for (const waiter of waiters) waiter.reject(closedError(reason));
    }
    extra.aborter?.abort(closedError(reason));
    queueMicrotask(() => this.#dispatchClose(wasClean, reason));
  }

  #dispatchClose(wasClean, reason) {
    this[kDispatchOwn]('close', CloseEvent, { wasClean, reason, code: 0 });
  }

  get [Symbol.toStringTag]() {
    return 'EventEndpoint';
  }
}

/**
 * Ends every open stream of this thread (of this copy of native-sse), for a
 * graceful shutdown: each is told to reconnect after a random delay within
 * `reconnectWindow` ms (so that a deploy does not bring every client back in
 * the same second), or, with `noReconnect`, to stop. Resolves once every
 * connection has finished, or after `timeout` ms, when the rest are dropped.
 * Then `server.close()` completes.
 */
const CLOSE_ALL_OPTIONS = ['reconnectWindow', 'noReconnect', 'timeout'];

async function closeAll(options = undefined) {
  options = optionsObject('options', options, CLOSE_ALL_OPTIONS, 'closeAll()');
  const reconnectWindow = count('options.reconnectWindow', options.reconnectWindow, 0);
  const timeout = count('options.timeout', options.timeout, native.DEFAULT_CLOSE_TIMEOUT_MS);
  const noReconnect = Boolean(options.noReconnect);
  // The open endpoints of this copy of the module: the outbox's sinks.
  const endpoints = outbox.attached();
  const finished = endpoints.map((endpoint) => endpoint[kShutdown](noReconnect, reconnectWindow));
  let timer;
  const late = new Promise((resolve) => (timer = setTimeout(resolve, timeout, 'late')));
  const outcome = await Promise.race([Promise.all(finished), late]);
  clearTimeout(timer);
  if (outcome === 'late') {
    for (const endpoint of endpoints) endpoint[kDestroy]();
    await Promise.all(finished);
  }
  return { closed: endpoints.length, dropped: outcome === 'late' };
}

module.exports = { EventEndpoint, CloseEvent, closeAll };
