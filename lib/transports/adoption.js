'use strict';

// Adoption (`adopt: true`): Node lets go of a connection whose bytes Rust
// writes already (src/io/direct.rs), and Rust alone watches it, writes to it
// and ends it (src/io/adopted.rs). Node's socket, request, response and
// parser are released: an idle connection then costs a fraction of what it
// costs Node. What depends on Node's internals is here, and only here:
// __test__/adoption.test.mjs checks it under every Node major the suite
// runs on.

/** The `close` listeners Node's HTTP server puts on a connection's socket
 * (lib/_http_server.js), by name; bound functions are named "bound …". */
const NODE_SOCKET_CLOSE = new Set(['socketOnClose', 'onServerResponseClose']);

function isNodes(listener) {
  return NODE_SOCKET_CLOSE.has(listener.name.replace(/^bound /, ''));
}

/**
 * Why the connection of `response` (a ServerResponse whose socket Rust
 * writes to) cannot be adopted, or null if it can:
 *
 * - `requestUnread`: the request's body is not all read (its bytes would
 *   be Rust's to read, and are the application's);
 * - `readAhead`: Node has read bytes past the request (a pipelined
 *   request), which would be lost;
 * - `socketListeners`: someone other than Node listens for the socket's
 *   `close` (for example `on-finished`, which `morgan` uses): it would be
 *   told the connection closed when it is adopted.
 */
function whyNotAdoptable(response) {
  const request = response.req;
  const socket = response.socket;
  if (request == null || !request.complete) return 'requestUnread';
  if (socket.readableLength > 0) return 'readAhead';
  const incoming = socket.parser?.incoming;
  if (incoming != null && incoming !== request) return 'readAhead';
  if (socket.rawListeners('close').some((listener) => !isNodes(listener))) return 'socketListeners';
  return null;
}

/**
 * Node lets go of the connection of `response`: it reads no more of it,
 * then its socket is destroyed (its descriptor closed; Rust holds its own,
 * so the connection stays open). The `close` listeners of the request and
 * the response are not told now: they are taken off first, and returned,
 * to be called when the connection really closes (`req.on('close', …)` is
 * the common cleanup), but for the transport's own (`ours`), which are
 * dropped. The response's other listeners are dropped with it.
 *
 * @returns {Array<[object, Function]>} the listeners, with their emitters
 */
function letGo(response, ours) {
  const request = response.req;
  const socket = response.socket;
  const later = [];
  for (const emitter of [request, response]) {
    for (const listener of emitter.rawListeners('close')) {
      if (!ours.has(listener)) later.push([emitter, listener]);
    }
    emitter.removeAllListeners('close');
    emitter.removeAllListeners('error');
  }
  socket.pause();
  socket.destroy();
  return later;
}

/** Calls what letGo() took off, as the emitters would have. */
function tellClosed(later) {
  for (const [emitter, listener] of later) {
    try {
      listener.call(emitter);
    } catch (err) {
      // A listener's fault is the application's: reported as Node would,
      // without ending the stream machinery that calls it.
      process.nextTick(() => {
        throw err;
      });
    }
  }
}

module.exports = { whyNotAdoptable, letGo, tellClosed };
