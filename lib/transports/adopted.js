'use strict';

// The transport of a connection Rust has adopted (see ./adoption.js and
// src/io/adopted.rs): Node's socket, request and response are let go of,
// and Rust writes to the connection, watches it and ends it. What is left
// here is what the endpoint and the application still reach it by.

const native = require('../native.js');
const { CloseReason } = require('../close-reasons.js');
const { kOnGone, kGone, kFinished, kSlot, kCloseTimeout } = require('../internal.js');
const { warnEndedBehind } = require('./contract.js');
const { Later } = require('./adoption.js');
const outbox = require('../outbox.js');

const FINISHED = Promise.resolve();

/** Where an adopted connection is. */
const LIVE = 0;
/** Told to end (cleanly, after what is queued) or dropped. */
const ENDING = 1;
/** Closed, its descriptor too. */
const CLOSED = 2;

/**
 * A transport (see ./contract.js) over an adopted connection. It takes the
 * place of the `NodeTransport` that adopted it, and holds only what an
 * idle connection needs: a few numbers, the endpoint, and the listeners
 * for the connection's end (it is their `Later`, ./adoption.js), which it
 * tells when Rust closes the connection.
 */
class AdoptedTransport extends Later {
  /** The endpoint (see ./contract.js's events): it has the stream's slot
   * and closeTimeout, read only while the stream is LIVE. */
  #events;
  #id;
  /** The server whose closeAllConnections() drops it, or null (see
   * ./adoption.js). */
  #server;
  #state = LIVE;
  /** `finished`, once asked for: [a promise, what resolves it until the
   * connection is closed]. */
  #finished = null;

  /**
   * @param events the endpoint
   * @param {number} id the connection's adoption id
   * @param server the server whose closeAllConnections() drops it, or null
   * @param finished the adopting transport's `finished` and what resolves
   *   it, if it was asked for, or null
   */
  constructor(events, id, server, finished) {
    super();
    this.#events = events;
    this.#id = id;
    this.#server = server;
    this.#finished = finished;
  }

  /** The connection is closed: the listeners for its end are told, and
   * those added from now on are Node's (see ./adoption.js's Later). */
  get ended() {
    return this.#state === CLOSED;
  }

  /** The connection's adoption id (../outbox.js finds it by this). */
  get adoptionId() {
    return this.#id;
  }

  /** The stream is ending: from now on the connection is found by its id
   * until it is closed (../outbox.js). */
  #leaveLive() {
    if (this.#state !== LIVE) return false;
    this.#state = ENDING;
    outbox.adoptedFinishing(this.#id, this);
    return true;
  }

  /** Flushes hand an adopted stream's bytes to Rust's writers, not here. */
  write() {
    return true;
  }

  /** Rust's own count has all the connection holds. */
  get buffered() {
    return 0;
  }

  get finished() {
    if (this.#finished === null) {
      if (this.#state === CLOSED) return FINISHED;
      let resolve;
      const promise = new Promise((settle) => (resolve = settle));
      this.#finished = [promise, resolve];
    }
    return this.#finished[0];
  }

  /** Nothing to give back: Rust ends the connection itself, with what is
   * queued and the response's last chunk, within closeTimeout. */
  reclaim() {
    // The endpoint has not ended yet: its slot is this stream's.
    const events = this.#events;
    if (this.#leaveLive()) native.endAdopted(events[kSlot], events[kCloseTimeout]);
  }

  end() {
    this.reclaim();
  }

  /** Drops the connection: one that is finishing is reset now; releasing
   * the stream resets the others (src/io/adopted.rs). */
  destroy() {
    if (this.#state === CLOSED) return;
    this.#leaveLive();
    native.releaseAdopted(this.#id);
  }

  /** The client left (../outbox.js). */
  [kGone]() {
    this.#leaveLive();
    this.#events[kOnGone](true, CloseReason.ClientDisconnected);
  }

  /** The connection is closed: its descriptor too. `clean`: the stream
   * ended it with everything written, so its response finished; otherwise
   * (the client left, a reset) it did not. */
  [kFinished](clean) {
    this.#state = CLOSED;
    this.#server = null;
    this.#finished?.[1]();
    this.tell(clean);
  }

  // What the application reaches the let-go response and socket by (see
  // ./adoption.js's standIn()).

  /** Whether `server`'s closeAllConnections() drops this connection. */
  isOf(server) {
    return this.#server === server;
  }

  /** Whether the let-go response and socket still reach this connection. */
  get reachable() {
    return this.#state !== CLOSED;
  }

  /** The response, socket or request was destroyed (or the server closed
   * every connection): the connection is dropped. */
  dropAdopted(err) {
    if (this.#state === CLOSED) return;
    if (err != null) this.#events[kOnGone](false, err?.message || String(err));
    else this.#events[kOnGone](true, CloseReason.ClientDisconnected);
    this.destroy();
  }

  /** Bytes written to the response behind the endpoint: they follow what
   * is queued, as they are. Returns whether they were: not once the
   * stream has ended (its slot may be another stream's by then; every
   * ending of the stream goes through this transport, which leaves LIVE
   * before the endpoint says it closed). */
  writeAdoptedBehind(chunk, encoding) {
    if (this.#state !== LIVE) return false;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.from(chunk);
    if (!native.sendWrittenBehind(this.#events[kSlot], bytes)) return false;
    outbox.schedule();
    return true;
  }

  /** The response (or socket) was ended behind the endpoint: the
   * connection ends cleanly, after what is queued. */
  endAdoptedBehind() {
    if (this.#state !== LIVE) return;
    this.reclaim();
    warnEndedBehind();
    this.#events[kOnGone](true, CloseReason.EndedBehind);
  }
}

module.exports = { AdoptedTransport };
