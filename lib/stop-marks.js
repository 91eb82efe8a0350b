'use strict';

// The mark of `@ayonli/jsext/sse`, beside the stop token. jsext's
// `close(true)` remembers the endpoint's last event id (the one its request
// carried, or the last it sent itself), and the first request that carries
// that id as `Last-Event-ID` is answered `204 No Content`, which uses the
// mark up. Code written for jsext relies on it (so does jsext's own test), so
// native-sse keeps it too, with two differences that make it safe:
//
// - **A mark belongs to the client it stopped.** It is kept under the id
//   *and* the client's fingerprint: the peer's address and what the request
//   carried to say who it is (`Cookie`, `Authorization`, and the
//   `X-Forwarded-For` and `Forwarded` a proxy appends the client's address
//   to). A request that carries the id but not the same fingerprint is
//   served as usual. Without it, a client refused with `close(true)` before
//   it was sent any id could name another client's id (a counter, `42`) as
//   its own `Last-Event-ID`, and stop that client for good.
// - **A mark is bounded in bytes.** What is kept is a 128-bit digest of the
//   fingerprint and the id, never the id itself: 10,000 marks of 15 KB ids
//   cost what 10,000 of short ones do. Ids longer than an id native-sse would
//   send (MAX_ID_BYTES) are never marked.
//
// In this process, at most MAX_MARKS at a time (the oldest go first), each for
// as long as a stop token is honoured. A Channel's ids are never marked
// (many clients hold them). The token (./stop-tokens.js) is the mechanism
// that holds across processes and cannot be forged; the mark is what jsext's
// users get where their client kept their own id.

const { createHash } = require('node:crypto');
const native = require('./native.js');

const MAX_MARKS = 10_000;
/** digest of (fingerprint, id) → when its mark expires (ms since the epoch),
 * oldest first. */
const marks = new Map();
let maxAge = native.DEFAULT_STOP_MAX_AGE_MS;

/** What a request carries that says which client sent it. */
const WHO_HEADERS = ['cookie', 'authorization', 'x-forwarded-for', 'forwarded'];

function headerOf(request, name) {
  if (typeof request.headers?.get === 'function') return request.headers.get(name) ?? '';
  const value = request.headers?.[name];
  if (Array.isArray(value)) return value.join('\n');
  return typeof value === 'string' ? value : '';
}

/**
 * The fingerprint of the client that sent `request` (a node:http or
 * node:http2 request, or a web Request, which has no peer address): 62
 * bits of a digest, as two small integers that an endpoint keeps in two of
 * its fields (V8 keeps such an integer in the field itself; a string would
 * be an object of 40 bytes more per idle client), in case it is closed
 * with `close(true)`.
 *
 * @returns {[number, number]}
 */
function fingerprintOf(request) {
  const hash = createHash('sha256');
  hash.update(request.socket?.remoteAddress ?? '');
  for (const name of WHO_HEADERS) hash.update(`\0${headerOf(request, name)}`);
  const digest = hash.digest();
  return [digest.readUInt32LE(0) >>> 1, digest.readUInt32LE(4) >>> 1];
}

function keyOf([high, low], id) {
  return createHash('sha256').update(`${high}.${low}\0`).update(id).digest().toString('base64url', 0, 16);
}

/** Whether `id` is one native-sse could have sent. */
function markable(id) {
  return id !== '' && Buffer.byteLength(id) <= native.MAX_ID_BYTES;
}

/** Marks `id` for the client of `fingerprint` (see fingerprintOf()): its
 * next request with that id gets 204. */
function mark(fingerprint, id) {
  if (!markable(id)) return;
  const key = keyOf(fingerprint, id);
  marks.delete(key);
  marks.set(key, performance.now() + maxAge);
  if (marks.size > MAX_MARKS) marks.delete(marks.keys().next().value);
}

/** Whether `id` was marked for the client that sent `request` and its mark
 * has not expired; uses the mark up. */
function takeMark(request, id) {
  if (marks.size === 0 || !markable(id)) return false;
  const key = keyOf(fingerprintOf(request), id);
  const expiry = marks.get(key);
  if (expiry === undefined) return false;
  marks.delete(key);
  return expiry > performance.now();
}

/** Marks are kept as long as stop tokens are honoured (configureStopTokens). */
function setMarkMaxAge(ms) {
  maxAge = ms;
}

/** How many marks are kept now (for tests and diagnostics). */
function markCount() {
  return marks.size;
}

module.exports = { fingerprintOf, mark, takeMark, setMarkMaxAge, markCount, MAX_MARKS };
