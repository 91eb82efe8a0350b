'use strict';

// The flush of this thread's event streams, once per turn of the event loop,
// and the one keep-alive timer they share.
//
// Frames are queued in Rust as they are sent. The first send of a turn
// schedules a flush with setImmediate, which runs once the current turn's
// callbacks and microtasks are done, so every frame of the turn leaves in a
// single write per stream, and a lone frame is not held past its turn.
// One call brings back the bytes of every stream with bytes waiting.

const native = require('./native.js');
const { kFlushed, kDrained, kFailed, kCutOff, kGone, kFinished, kTransport } = require('./internal.js');

// This copy of the module's identity in Rust. A module registry reset (test
// runners, dev servers) loads a second copy on the same thread, sharing the
// addon and its hub; each copy flushes, and keeps alive, its own streams
// only, so that neither takes bytes meant for the other's writers.
const owner = native.newOwner();

/** slot → the stream's sink (its endpoint), told through methods named by
 * symbols (see ./internal.js), not closures made per stream: `kFlushed`
 * (its share of a batch), `kDrained`, `kFailed`, `kCutOff`. */
const sinks = [];
let scheduled = false;

function flush() {
  scheduled = false;
  const batch = native.flush(owner);
  if (batch === null) return;
  const { bytes, layout, drained, failed, cutOff } = batch;
  for (let i = 0; i < layout.length; i += 3) {
    sinks[layout[i]]?.[kFlushed](bytes.subarray(layout[i + 1], layout[i + 2]));
  }
  if (drained != null) for (const slot of drained) sinks[slot]?.[kDrained]();
  if (failed != null) for (const slot of failed) sinks[slot]?.[kFailed]();
  if (cutOff != null) for (const slot of cutOff) sinks[slot]?.[kCutOff]();
  // More than one batch can address waited: the rest goes next turn.
  if (batch.more) schedule();
}

// A socket that Rust writes to and that was full is writable again: Rust
// writes what it kept, and the next flush goes on (and reports drains).
native.setDirectWakeup(owner, (slot) => {
  native.resumeDirect(slot);
  schedule();
});

/** Adopted connections whose stream has ended, until they are closed:
 * adoption id → transport. While its stream lives, a connection is found
 * through the stream's endpoint (`sinks[slot][kTransport]`): an idle
 * connection is in no table of its own. */
const finishing = new Map();

/** The adopted connection `id` of the stream at `slot`, if it is not
 * closed yet: an object told `kGone` (the client left) and `kFinished`
 * (the connection is closed). */
function adoptedAt(id, slot) {
  const transport = finishing.get(id) ?? sinks[slot]?.[kTransport];
  return transport?.adoptionId === id ? transport : undefined;
}

native.setAdoptionEvents(owner, ({ id, slot, gone, clean }) => {
  const transport = adoptedAt(id, slot);
  if (transport === undefined) return;
  if (gone) transport[kGone]();
  else {
    finishing.delete(id);
    native.releaseAdopted(id);
    transport[kFinished](clean);
  }
});

/** The adopted connection `id`'s stream has ended (`transport` is its),
 * and it is finishing: found here until it is closed. */
function adoptedFinishing(id, transport) {
  finishing.set(id, transport);
}

/** The adopted connections not yet closed of `server` (see
 * ./transports/adoption.js), for its closeAllConnections(). */
function adoptedOf(server) {
  const live = attached().map((sink) => sink[kTransport]);
  return [...live, ...finishing.values()].filter((transport) => transport?.isOf?.(server));
}

/** Makes sure a flush runs at the end of this turn. */
function schedule() {
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}

/** Routes a slot's bytes and reports to `sink` until `detach(slot)`. */
function attach(slot, sink) {
  sinks[slot] = sink;
}

function detach(slot) {
  sinks[slot] = undefined;
}

/** The streams attached now (every open endpoint of this copy of the
 * module), for closeAll(). */
function attached() {
  return sinks.filter((sink) => sink !== undefined);
}

// Keep-alive: one timer in Rust (a tokio task) for all streams, started with
// the first stream that wants keep-alive and stopped with the last, so
// nothing outlives the endpoints. Each tick queues a comment on the streams
// idle for their keep-alive time, then flushes. The tick period is a fifth
// of the shortest keep-alive in use, so a comment goes out between 1 and
// 1.2 keep-alive periods after the last byte.

/** keep-alive ms → number of open streams using it. */
const keepAliveUsers = new Map();
let tickPeriod = 0;

function onKeepAliveTick() {
  if (native.queueKeepAlives(owner) > 0) schedule();
}

function retuneKeepAlive() {
  if (keepAliveUsers.size === 0) {
    tickPeriod = 0;
    native.stopKeepAliveTimer(owner);
    return;
  }
  const period = Math.max(1, Math.floor(Math.min(...keepAliveUsers.keys()) / 5));
  if (period !== tickPeriod) {
    tickPeriod = period;
    native.startKeepAliveTimer(owner, onKeepAliveTick, period);
  }
}

function retainKeepAlive(ms) {
  const users = keepAliveUsers.get(ms) ?? 0;
  keepAliveUsers.set(ms, users + 1);
  if (users === 0) retuneKeepAlive();
}

function releaseKeepAlive(ms) {
  const users = keepAliveUsers.get(ms) - 1;
  if (users > 0) {
    keepAliveUsers.set(ms, users);
  } else {
    keepAliveUsers.delete(ms);
    retuneKeepAlive();
  }
}

module.exports = {
  owner,
  schedule,
  attach,
  detach,
  attached,
  adoptedFinishing,
  adoptedOf,
  retainKeepAlive,
  releaseKeepAlive,
};
