'use strict';

const { CloseReason } = require('../close-reasons.js');
const { ownShare } = require('./contract.js');
const { kOnDrain, kOnGone } = require('../internal.js');

// Delivery of a stream's bytes as the body of a web `Response`, for
// fetch-style servers (Request → Response).
//
// The body is a pull stream: bytes leave Rust only when the consumer asks
// for more. Between reads the stream's slot stays paused, so unread bytes
// wait in Rust, where `highWaterMark` holds producers back and
// `maxBufferedBytes` caps them, just as with a full socket.

/** A transport (see contract.js) over the body of a web `Response`. */
class WebTransport {
  #controller = null;
  /** Settles the pending `pull`, once bytes have been handed over. */
  #pulled = null;
  #gone = false;

  /** Resolves once the body has ended (the server sending it owns the
   * connection). */
  finished;
  #finish;

  /**
   * @param {import('./contract.js').TransportEvents} events
   */
  constructor(events) {
    this.finished = new Promise((resolve) => (this.#finish = resolve));
    this.body = new ReadableStream(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: () => {
          // The consumer wants bytes: let the next flush bring them.
          events[kOnDrain]();
          return new Promise((resolve) => (this.#pulled = resolve));
        },
        cancel: () => {
          this.#gone = true;
          this.#finish();
          events[kOnGone](true, CloseReason.ClientDisconnected);
        },
      },
      // No read-ahead: a chunk is produced only for a waiting read.
      new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
    );
  }

  /** Hands a share of a flush to the consumer. Always false: the stream
   * waits for the next read (`kOnDrain`) before it takes more. */
  write(chunk) {
    if (this.#gone) return true;
    // Kept until read: see ownShare.
    this.#controller.enqueue(ownShare(chunk));
    const pulled = this.#pulled;
    this.#pulled = null;
    pulled?.();
    return false;
  }

  /** Bytes handed over and not read yet. */
  get buffered() {
    return Math.max(0, -(this.#controller.desiredSize ?? 0));
  }

  /** Nothing to take back: Rust never writes a body itself. */
  reclaim() {}

  /** Hands over the last bytes and closes the body. (The server that sends
   * the Response owns the connection: closeTimeout cannot drop it.) */
  end(rest) {
    if (this.#gone) return;
    this.#gone = true;
    if (rest !== null) this.#controller.enqueue(rest);
    this.#controller.close();
    this.#pulled?.();
    this.#finish();
  }

  destroy(reason) {
    if (this.#gone) return;
    this.#gone = true;
    this.#controller.error(new Error(`The event stream was closed: ${reason}`));
    this.#finish();
    this.#pulled?.();
  }
}

module.exports = { WebTransport };
