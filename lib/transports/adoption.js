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

/** The `finish` listener Node's HTTP server puts on a response, by its
 * names across majors. */
const NODE_RESPONSE_FINISH = new Set(['resOnFinish', 'onResponseFinish']);

const nameOf = (listener) => listener.name.replace(/^bound /, '');
const isNodes = (listener) => NODE_SOCKET_CLOSE.has(nameOf(listener));

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
 *   told the connection closed when it is adopted;
 * - `idleTimeout`: the socket has an idle timeout (`setTimeout`), which
 *   Rust's writes would not keep from firing;
 * - `responseListeners`: someone other than Node listens for the
 *   response's `finish` (a logger, `on-finished`), which an adopted
 *   response never emits.
 */
function whyNotAdoptable(response) {
  const request = response.req;
  const socket = response.socket;
  if (request == null || !request.complete) return 'requestUnread';
  if (socket.readableLength > 0) return 'readAhead';
  if (socket.timeout > 0) return 'idleTimeout';
  const incoming = socket.parser?.incoming;
  if (incoming != null && incoming !== request) return 'readAhead';
  if (socket.rawListeners('close').some((listener) => !isNodes(listener))) return 'socketListeners';
  if (response.rawListeners('finish').some((listener) => !NODE_RESPONSE_FINISH.has(nameOf(listener))))
    return 'responseListeners';
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

/** The link to the transport of an adopted connection, on its let-go
 * response and socket. */
const kAdoptedBy = Symbol('native-sse adopted by');

/** The server's adopted connections (transports), for its
 * closeAllConnections(). */
const kAdoptedOf = Symbol('native-sse adopted connections');

// What the application calls to end a stream behind the endpoint still
// ends it once its connection is adopted: destroy() drops the connection
// (with the error, if one is given), end() ends it cleanly, and what
// write() is given goes into the body after what is queued.
function destroyAdopted(err) {
  this[kAdoptedBy]?.transport?.dropAdopted(err);
  return this;
}

function writeAdopted(chunk, encoding, callback) {
  if (typeof encoding === 'function') [callback, encoding] = [encoding, undefined];
  const written = this[kAdoptedBy]?.transport?.writeAdoptedBehind(chunk, encoding) ?? false;
  if (typeof callback === 'function') process.nextTick(callback, written ? null : new Error('not written'));
  return written;
}

function endAdopted(...args) {
  const callback = args.findLast((arg) => typeof arg === 'function');
  this[kAdoptedBy]?.transport?.endAdoptedBehind();
  if (callback !== undefined) process.nextTick(callback);
  return this;
}

/** The set of `server`'s adopted connections, made with the first (when
 * its closeAllConnections() is made to drop them too); null if it has no
 * such method. Not inside standIn(): a function made there would keep
 * standIn's first transport alive with the server. */
function adoptedOf(server) {
  if (server == null || typeof server.closeAllConnections !== 'function') return null;
  let adopted = server[kAdoptedOf];
  if (adopted === undefined) {
    adopted = server[kAdoptedOf] = new Set();
    const closeAllConnections = server.closeAllConnections;
    server.closeAllConnections = function (...args) {
      for (const each of adopted) each.dropAdopted();
      return closeAllConnections.apply(this, args);
    };
  }
  return adopted;
}

/** Makes `destroy()`, `end()` and `write()` of the let-go response and
 * socket reach the adopted stream of `transport`, and the server's
 * closeAllConnections() drop it, until forgetAdopted() is given the link
 * returned (the connection is closed). Not the request's: Node destroys it as the
 * socket closes. The response's and socket's are replaced once Node's own
 * handling of the socket's close is done, as it follows letGo(). They
 * reach the transport through a link that is cut then; nothing made here
 * holds the response or the socket past that close (each function is made
 * in a scope of its own: V8 gives the closures of one scope one context).
 */
function standIn(response, socket, transport) {
  const adopted = adoptedOf(socket.server);
  const link = { transport, adopted };
  replaceOnClose(response, socket, link);
  adopted?.add(transport);
  return link;
}

function replaceOnClose(response, socket, link) {
  socket.once('close', () => {
    if (link.transport === null) return;
    for (const target of [response, socket]) {
      target[kAdoptedBy] = link;
      target.destroy = destroyAdopted;
      target.end = endAdopted;
      target.write = writeAdopted;
    }
  });
}

/** Undoes standIn(): the stand-ins reach nothing any more. */
function forgetAdopted(link) {
  link.adopted?.delete(link.transport);
  link.transport = null;
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

module.exports = { whyNotAdoptable, letGo, standIn, forgetAdopted, tellClosed };
