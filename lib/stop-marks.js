'use strict';

// The mark of `@ayonli/jsext/sse`, beside the stop token. jsext's
// `close(true)` remembers the endpoint's last event id (the one its request
// carried, or the last it sent itself), and the first request that carries
// that id as `Last-Event-ID` is answered `204 No Content`, which uses the
// mark up. Code written for jsext relies on it, so native-sse keeps it too,
// for the ids an endpoint sent itself only (a Channel's ids are shared by
// many clients: marking one would stop them all), and bounded: in this
// process, at most MAX_MARKS at a time (the oldest go first), each for as
// long as a stop token is honoured. The token (./stop-tokens.js) is the
// mechanism that holds across processes and cannot be forged; the mark is
// what jsext's users get where their client kept their own id.

const native = require('./native.js');

const MAX_MARKS = 10_000;
/** id → when its mark expires (ms since the epoch), oldest first. */
const marks = new Map();
let maxAge = native.DEFAULT_STOP_MAX_AGE_MS;

/** Marks `id` (nothing for ""): its next request gets 204. */
function mark(id) {
  if (id === '') return;
  marks.delete(id);
  marks.set(id, Date.now() + maxAge);
  if (marks.size > MAX_MARKS) marks.delete(marks.keys().next().value);
}

/** Whether `id` was marked and its mark has not expired; uses the mark up. */
function takeMark(id) {
  const expiry = marks.get(id);
  if (expiry === undefined) return false;
  marks.delete(id);
  return expiry > Date.now();
}

/** Marks are kept as long as stop tokens are honoured (configureStopTokens). */
function setMarkMaxAge(ms) {
  maxAge = ms;
}

module.exports = { mark, takeMark, setMarkMaxAge, MAX_MARKS };
