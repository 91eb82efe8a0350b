'use strict';

// Delivery of a stream's bytes to a node:http or node:http2 (compat API)
// response.

const { ServerResponse } = require('node:http');
const native = require('../binding.js');

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

/** A transport (see transport.js) over a node:http or node:http2 response. */
class NodeTransport {
  #slot;
  #response;
  #onDrain;
  /** Where flushes go once known: the response's socket (direct chunks),
   * or the response itself; `undefined` until the first flush. */
  #sink = undefined;

  /**
   * @param {number} slot the stream's slot in Rust
   * @param response an http.ServerResponse or http2.Http2ServerResponse
   * @param {import('./transport.js').TransportEvents} events
   */
  constructor(slot, response, { onDrain, onGone }) {
    this.#slot = slot;
    this.#response = response;
    this.#onDrain = onDrain;
    // An error, if any, comes first; `close` follows in every case. A response
    // destroyed with an error may report it only as `errored`.
    response.on('error', (err) => onGone(false, err?.message || String(err)));
    response.once('close', () => {
      const err = response.errored;
      if (err) onGone(false, err.message || String(err));
      else onGone(true, 'client disconnected');
    });
  }

  /** Writes a share of a flush; false when the response is full (then
   * `onDrain` follows once it has room). */
  write(chunk) {
    const response = this.#response;
    if (response.destroyed || response.writableEnded) return true;
    let sink = this.#sink;
    let written;
    if (sink === undefined) {
      // The first flush (the opening) goes through the response, which sends
      // the headers with it; then the way for the others is chosen.
      written = response.write(chunk);
      sink = this.#sink = directSocket(response) ?? response;
      if (sink !== response) native.setFraming(this.#slot, native.StreamFraming.Chunked);
    } else {
      written = sink.write(chunk);
    }
    if (!written) sink.once('drain', this.#onDrain);
    return written;
  }

  /** Bytes the response holds that the socket has not taken yet. */
  get buffered() {
    return this.#response.writableLength ?? 0;
  }

  /** Writes the last bytes and ends the response. */
  end(rest) {
    const response = this.#response;
    if (response.destroyed || response.writableEnded) return;
    if (rest !== null) response.write(rest);
    response.end();
  }

  /** Drops the connection: nothing more is written. */
  destroy() {
    this.#response.destroy();
  }
}

module.exports = { NodeTransport };
