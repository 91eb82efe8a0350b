'use strict';

// The transports: what carries an endpoint's bytes to its client. This file
// is their contract, written down; node.js, adopted.js and web.js are the
// three that keep it.

const codes = require('../codes.js');

/**
 * The contract between an endpoint and the thing that carries its bytes to
 * the client: a node:http or node:http2 response (`NodeTransport`), the
 * connection of one that Rust has adopted (`AdoptedTransport`, which takes
 * the place of the `NodeTransport` that adopted it: the endpoint is told by
 * `[kAdopted](transport)`), or the body of a web `Response`
 * (`WebTransport`). An endpoint knows its transport
 * only through these members and events.
 *
 * Members:
 *
 * - `write(chunk: Buffer): boolean` — hands over one stream's share of a
 *   flush. The transport owns the chunk from then on (it may keep it until
 *   the client takes it). Returns `false` when the transport is full: the
 *   endpoint then pauses its stream in Rust, and the transport calls
 *   `[kOnDrain]()` once it has room. A transport that has ended or been
 *   destroyed accepts and drops the chunk (returns `true`).
 * - `buffered: number` — bytes handed over that the client has not taken
 *   yet; added to what waits in Rust for `bufferedAmount`.
 * - `reclaim(): void` — called on a clean end before the stream's slot in
 *   Rust is released: a transport whose bytes Rust writes to the socket
 *   itself (see src/io/direct.rs) takes the socket back, writing first what
 *   Rust framed and could not write yet. Idempotent; others do nothing.
 * - `end(rest: Buffer | null, timeout: number): void` — writes `rest` (what
 *   was still queued in Rust), then ends the stream cleanly; a transport that
 *   owns its connection drops it if the client has not taken everything
 *   within `timeout` ms (closeTimeout), so that every close finishes.
 *   Idempotent.
 * - `destroy(reason: string): void` — drops the connection: nothing more is
 *   written, and a transport that owns a TCP connection resets it, so that
 *   the kernel does not keep what the client never took. Idempotent.
 * - `finished: Promise<void>` — resolves once the transport is done with its
 *   connection (the response closed, or the body ended), for `closeAll()`.
 *
 * Framing: Rust hands a stream's bytes over as they are
 * (`StreamFraming.Plain`). A transport that writes them straight to the
 * socket of a chunked HTTP/1.1 response sets `StreamFraming.Chunked` on its
 * stream (`native.setFraming`) before its first such write; one that hands
 * the socket to Rust (`native.attachSocket`, which frames them as
 * `StreamFraming.Direct`) gets no more `write` calls: Rust writes to the
 * socket itself until `reclaim()`. Only the transport knows where the bytes
 * go.
 *
 * Memory: a chunk is a view of one Buffer that holds every stream's bytes of
 * a flush. A transport that may keep a chunk beyond the `write` call (a
 * socket that did not take it at once, a body not read yet) writes
 * `ownShare(chunk)` instead (below).
 *
 * Events, told to the object given to the constructor (the endpoint),
 * through its methods named by the symbols of ../internal.js (an endpoint
 * makes no closures for its transport: each would be held for as long as
 * the stream lives):
 *
 * - `[kOnDrain]()` — the transport has room again (or, for a pull-based
 *   body, the consumer asks for more).
 * - `[kOnGone](wasClean: boolean, reason: string)` — the client or the
 *   connection went away, or the response was ended or destroyed by someone
 *   else. Called at most once per cause; the endpoint ignores all but the
 *   first.
 *
 * @typedef {{ [kOnDrain](): void, [kOnGone](wasClean: boolean, reason: string): void }} TransportEvents
 * @typedef {{ write(chunk: Buffer): boolean, readonly buffered: number, reclaim(): void, end(rest: Buffer | null, timeout: number): void, destroy(reason: string): void }} Transport
 */

/** The most of other clients' bytes that one client's chunk may keep alive
 * (see ownShare). */
const PIN_LIMIT = 256 * 1024;

/**
 * A share of a flush as a transport may keep it. A write that the socket (or
 * an HTTP/2 stream, or an unread body) does not take at once keeps its chunk
 * until it does, and a chunk that is a view of the flush's one Buffer keeps
 * every other client's bytes of that turn alive with it: one stuck client
 * pins a whole flush. Whether a write is taken at once cannot be known
 * before it is made, so a share of a large flush is copied, and a client
 * holds its own bytes plus at most PIN_LIMIT of others'. (Small flushes, the
 * usual ticker, are not copied: pinning one costs little. Streams that Rust
 * writes to directly never come here.)
 */
function ownShare(chunk) {
  const flush = chunk.buffer.byteLength;
  return flush > PIN_LIMIT && chunk.byteLength * 2 < flush ? Buffer.from(chunk) : chunk;
}

let warnedEndedBehind = false;

/** Says once per process what ends a response behind an endpoint. */
function warnEndedBehind() {
  if (warnedEndedBehind) return;
  warnedEndedBehind = true;
  process.emitWarning("An EventEndpoint's response was ended by someone else, so the event stream ended with it", {
    type: 'NativeSseWarning',
    code: codes.EndedBehind,
    detail:
      'A framework may end the response after the handler returns: with Koa, set ctx.respond = false before creating the endpoint.',
  });
}

module.exports = { ownShare, warnEndedBehind };
