'use strict';

// Delivery of a stream's bytes to a node:http or node:http2 (compat API)
// response.

const { ServerResponse } = require('node:http');
const native = require('../native.js');
const { CloseReason } = require('../close-reasons.js');
const { MAX_U32 } = require('../options.js');
const { IS_DENO } = require('../runtime.js');
const { ownShare, warnEndedBehind } = require('./contract.js');
const { whyNotAdoptable, pipelinedAfter, letGo, serverOf, standIn } = require('./adoption.js');
const { AdoptedTransport } = require('./adopted.js');
const { kOnDrain, kOnGone, kAdopted } = require('../internal.js');
const metrics = require('../diagnostics/metrics.js');

/**
 * The socket of a chunked HTTP/1.1 response whose headers have gone out, if
 * flushes may be written to it directly, as ready-framed chunks: one socket
 * write per flush instead of the three that `res.write` makes, and none of
 * its bookkeeping. Only for a plain `ServerResponse` that is the socket's
 * current response and whose `write` nobody replaced (compression
 * middleware does); anything else, HTTP/2 included, goes through `write`.
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

/**
 * Why Rust cannot write to `socket` itself (so cannot adopt its
 * connection), or null if it can: `tls`; `idleTimeout` (Rust's writes are
 * no activity to Node: a socket with an idle timeout, socket.setTimeout or
 * server.timeout, stays on the JavaScript path, whose writes keep it
 * alive); `platform` (Windows); `noDescriptor` (a runtime whose sockets
 * show none: Bun, Deno). The descriptor is read from the socket's handle
 * while it is open: Rust duplicates it at once (see src/io/direct.rs).
 */
function whyNoDescriptor(socket) {
  if (socket.encrypted) return 'tls';
  if (socket.timeout > 0) return 'idleTimeout';
  if (process.platform === 'win32') return 'platform';
  const fd = socket._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? null : 'noDescriptor';
}

/** Whether the connection of `request` may yet be adopted, as far as can
 * be told before the stream's headers go: Rust could write to its socket,
 * and no request was read after it. */
function mayAdopt(request) {
  const socket = request?.socket;
  return socket != null && whyNoDescriptor(socket) === null && !pipelinedAfter(request);
}

/** Why the first flush chose `response` itself over its socket: `http2`,
 * `wrapped` (its write was replaced: compression middleware), or
 * `notChunked` (an HTTP/1.0 client, or a length the application set). */
function whyThroughResponse(response) {
  if (!(response instanceof ServerResponse)) return 'http2';
  if (response.write !== ServerResponse.prototype.write) return 'wrapped';
  return 'notChunked';
}

/** `NATIVE_SSE_DIRECT=0` keeps every stream on the JavaScript path: for
 * comparing the two, or as a way out should the direct one misbehave. */
const DIRECT_WRITES = process.env.NATIVE_SSE_DIRECT !== '0';

/** Where a stream's bytes go once Rust writes them to its socket itself. */
const RUST = Symbol('written by Rust');

const FINISHED = Promise.resolve();

/** A transport (see contract.js) over a node:http or node:http2 response. */
class NodeTransport {
  #slot;
  #response;
  /** Told of drains and of the client gone (the endpoint). */
  #events;
  /** Where flushes go once known: `RUST` (Rust writes to the socket), the
   * response's socket (ready-framed chunks written from JavaScript), or the
   * response itself; `undefined` until the first flush. */
  #sink = undefined;
  /** How long Rust lets the socket take nothing before cutting it off. */
  #stallTimeout;
  /** Whether Rust may adopt the connection. */
  #adopt;
  /** The transport's own listeners on the response (not the
   * application's, which adoption keeps for the real close). */
  #ours = new Set();
  /** See `finished`: made when asked for (closeAll()), not per stream. */
  #finished = null;
  #resolveFinished = null;

  /**
   * @param {number} slot the stream's slot in Rust
   * @param response an http.ServerResponse or http2.Http2ServerResponse
   * @param {import('./contract.js').TransportEvents} events
   * @param {{ stallTimeout: number, adopt: boolean }} options
   *   ms a socket Rust writes to may take nothing; whether Rust may adopt
   *   the connection (its clean end then takes up to the endpoint's
   *   closeTimeout)
   */
  constructor(slot, response, events, { stallTimeout, adopt }) {
    this.#slot = slot;
    this.#stallTimeout = stallTimeout;
    this.#adopt = adopt;
    this.#response = response;
    this.#events = events;
    const onGone = (wasClean, reason) => events[kOnGone](wasClean, reason);
    const onFinished = () => this.#markFinished();
    this.#ours.add(onFinished);
    response.on('close', onFinished);
    // An error, if any, comes first; `close` follows in every case. A response
    // destroyed with an error may report it only as `errored`.
    const onError = (err) => onGone(false, err?.message || String(err));
    this.#ours.add(onError);
    response.on('error', onError);
    let destroyedWith = null;
    if (IS_DENO) {
      // Deno's node:http neither sets `errored` nor emits 'error' on a
      // response destroyed with an error: the error is kept on the way in.
      const destroy = response.destroy;
      response.destroy = function (err, ...rest) {
        if (err != null) destroyedWith ??= err;
        return destroy.call(this, err, ...rest);
      };
    }
    const onClose = () => {
      const err = response.errored ?? destroyedWith;
      if (err) onGone(false, err.message || String(err));
      else if (response.writableEnded && !this.#ending) {
        // Someone else ended the response: a framework that ends it after
        // the handler returns (Koa, unless ctx.respond = false).
        warnEndedBehind();
        onGone(true, CloseReason.EndedBehind);
      } else onGone(true, CloseReason.ClientDisconnected);
    };
    this.#ours.add(onClose);
    response.on('close', onClose);
  }

  /** Resolves once the response is done with its connection (for an
   * adopted one, once Rust has closed it). */
  get finished() {
    this.#finished ??= new Promise((resolve) => (this.#resolveFinished = resolve));
    return this.#finished;
  }

  #markFinished() {
    if (this.#resolveFinished === null) this.#finished ??= FINISHED;
    else this.#resolveFinished();
    this.#resolveFinished = null;
  }

  /** Writes a share of a flush; false when the response is full (then
   * `onDrain` follows once it has room). */
  write(chunk) {
    const response = this.#response;
    // Adopted (Rust writes, and no flush hands this stream's bytes here),
    // ended or destroyed: the chunk is dropped.
    if (response === null || response.destroyed || response.writableEnded) return true;
    let sink = this.#sink;
    let written;
    if (sink === undefined) {
      // The first flush (the opening) goes through the response, which sends
      // the headers with it; then the way for the others is chosen: the
      // socket (ready-framed chunks), or else the response.
      written = response.write(ownShare(chunk));
      sink = this.#sink = directSocket(response) ?? response;
      if (sink !== response) native.setFraming(this.#slot, native.StreamFraming.Chunked);
      else this.#cannotAdopt(whyThroughResponse(response));
    } else {
      written = sink.write(ownShare(chunk));
    }
    // Compression middleware (the `compression` package) buffers what is
    // written until `flush()`: an event stream flushes every write.
    if (sink === response && typeof response.flush === 'function') response.flush();
    // A full response holds at least its high-water mark for this client:
    // Rust counts that against the client's cap and the budget until
    // 'drain'. Below the mark, what it holds is small and leaves on its own.
    this.#report(written ? 0 : (response.writableLength ?? 0));
    if (!written) {
      sink.once('drain', () => {
        this.#report(0);
        // Node holds none of the socket's bytes now: Rust may take it over
        // (a stream whose every write was large, such as a replay's, would
        // otherwise stay on this path until a small one).
        if (sink !== response) this.#attach();
        this.#events[kOnDrain]();
      });
    } else if (!this.#attach(this.#adopt) && this.#adopt && sink !== response) {
      // Node still holds the opening's bytes (corked until the next tick):
      // tried again then, so that a stream is adopted without waiting for
      // its next event (an idle one may have none for long).
      setImmediate(() => this.#attach());
    }
    return written;
  }

  /** Hands the socket to Rust if Node holds none of its bytes; returns
   * whether it did. `now`: what Node corked is written out first (for a
   * connection to adopt: its request, response and socket are then let go
   * of in the turn they were made, and die young, before V8 moves them to
   * its old space, whose pages it keeps). */
  #attach(now = false) {
    const response = this.#response;
    const sink = this.#sink;
    if (response === null || sink === RUST || sink === response || sink == null) return false;
    if (this.#ending || response.destroyed || response.writableEnded) return false;
    if (now) {
      // Node uncorks them at the next tick anyway; uncork() past zero does
      // nothing.
      response.uncork?.();
      sink.uncork();
    }
    if (!DIRECT_WRITES) {
      this.#cannotAdopt('directOff');
      return false;
    }
    const noDescriptor = whyNoDescriptor(sink);
    if (noDescriptor !== null) {
      this.#cannotAdopt(noDescriptor);
      return false;
    }
    if (
      sink.writableLength !== 0 ||
      response.writableLength !== 0 ||
      !native.attachSocket(this.#slot, sink._handle.fd, this.#stallTimeout)
    )
      return false;
    // Node holds none of the socket's bytes (the write went out at once,
    // uncorked): from the next flush on, Rust writes to it itself. Both
    // counts matter: Node 26 keeps a corked response's bytes in the
    // response, not in its socket, until the next tick.
    this.#sink = RUST;
    if (!this.#adopt || !this.#adoptConnection()) this.#guardResponse();
    return true;
  }

  /** Adoption was wanted and cannot be: counted once, by why (see
   * diagnostics().notAdopted). */
  #cannotAdopt(why) {
    if (!this.#adopt) return;
    this.#adopt = false;
    metrics.notAdopted(why);
  }

  /** Rust takes the connection over, and Node lets go of it (see
   * ./adoption.js): an `AdoptedTransport` takes this one's place (the
   * endpoint is told), and nothing of Node's connection is held from then
   * on (the listeners taken off hold only what the application's do).
   * Returns false where it cannot be (nothing changed: the stream goes on
   * as a direct one), and counts why not. */
  #adoptConnection() {
    const response = this.#response;
    const why = whyNotAdoptable(response);
    if (why !== null) {
      metrics.notAdopted(why);
      return false;
    }
    const id = native.adoptSocket(this.#slot);
    if (id < 0) {
      metrics.notAdopted('unwatchable');
      return false;
    }
    const socket = response.socket;
    const finished = this.#finished === null ? null : [this.#finished, this.#resolveFinished];
    const adopted = new AdoptedTransport(this.#events, id, serverOf(socket), finished);
    letGo(response, this.#ours, adopted);
    standIn(response, socket, adopted);
    this.#ours = null;
    this.#response = null;
    this.#events[kAdopted](adopted);
    metrics.adopted();
    return true;
  }

  /** What the response held when last told to Rust (which counts it
   * against the client's cap and the budget). */
  #reported = 0;

  /** Tells Rust how much the response holds for this client. */
  #report(bytes) {
    const held = Math.min(bytes, MAX_U32);
    if (held !== this.#reported) {
      this.#reported = held;
      native.setHeld(this.#slot, held);
    }
  }

  /** Bytes the response holds that the socket has not taken yet, beyond
   * what Rust was last told (Rust's own count has the rest). */
  get buffered() {
    return Math.max(0, (this.#response.writableLength ?? 0) - this.#reported);
  }

  /**
   * While Rust writes to the socket, anyone who writes to the response or
   * ends it behind the endpoint (`res.write`, `res.end`, as middleware or
   * an application may), or gives the socket an idle timeout, first gives
   * the socket back to Node, so that Node's bytes follow Rust's, whole. The
   * stream then goes on through the response.
   */
  #guardResponse() {
    const response = this.#response;
    const transport = this;
    const restores = [];
    const guard = (target, name, when = () => true) => {
      const own = Object.getOwnPropertyDescriptor(target, name);
      const original = target[name];
      target[name] = function (...args) {
        if (when(...args)) transport.reclaim();
        return original.apply(this, args);
      };
      restores.push(() => (own ? Object.defineProperty(target, name, own) : delete target[name]));
    };
    guard(response, 'write');
    guard(response, 'end');
    // Rust's writes are no activity to Node: an idle timeout given to the
    // socket now (req.setTimeout, res.setTimeout, socket.setTimeout) would
    // end a stream that writes. The stream goes back to the JavaScript
    // path, whose writes keep the socket alive, before the timeout is set.
    const socket = response.socket;
    if (socket != null) guard(socket, 'setTimeout', (ms) => Number(ms) > 0);
    this.#unguard = () => {
      for (const restore of restores) restore();
    };
  }

  /** Undoes #guardResponse. */
  #unguard = null;

  /** Takes the socket back from Rust, if Rust writes to it: what Rust
   * framed and could not write yet goes to the socket first, as it is. */
  reclaim() {
    if (this.#sink !== RUST) return;
    const response = this.#response;
    this.#unguard?.();
    this.#unguard = null;
    this.#sink = response;
    const pending = native.detachSocket(this.#slot);
    if (pending !== null && !response.destroyed) response.socket?.write(pending);
  }

  /** The endpoint itself is ending the response. */
  #ending = false;

  /** Writes the last bytes and ends the response; drops the connection if
   * the client has not taken them within `timeout` ms. */
  end(rest, timeout) {
    const response = this.#response;
    this.#ending = true;
    this.reclaim();
    if (response === null || response.destroyed || response.writableEnded) return;
    if (rest !== null) response.write(rest);
    response.end();
    if (!response.destroyed && !response.writableFinished) {
      const timer = setTimeout(() => this.destroy(), timeout);
      timer.unref();
      response.once('close', () => clearTimeout(timer));
    }
  }

  /** Drops the connection: nothing more is written, and what the kernel
   * still holds for the client is discarded (the connection is reset), so
   * that a client that does not read leaves no orphaned socket holding its
   * backlog. */
  destroy() {
    const response = this.#response;
    if (response === null) return; // adopted: its AdoptedTransport's now
    if (!response.destroyed && response instanceof ServerResponse) {
      const socket = response.socket;
      if (socket != null && !socket.encrypted && socket._httpMessage === response) {
        const fd = socket._handle?.fd;
        if (typeof fd === 'number' && fd >= 0) native.resetOnClose(fd);
      }
    }
    response.destroy();
  }
}

module.exports = { NodeTransport, mayAdopt };
