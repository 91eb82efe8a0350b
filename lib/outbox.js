'use strict';

// The one flush of this thread's event streams per turn of the event loop.
//
// Frames are queued in Rust as they are sent. The first send of a turn
// schedules a flush with setImmediate, which runs once the current turn's
// callbacks and microtasks are done, so every frame of the turn leaves in a
// single write per stream, and a lone frame is not held past its turn.
// One call brings back the bytes of every stream with bytes waiting.

const native = require('../binding.js');

/** slot → the function that writes that stream's share of a batch. */
const writers = [];
let scheduled = false;

function flush() {
  scheduled = false;
  const batch = native.flush();
  if (batch === null) return;
  const { bytes, layout } = batch;
  for (let i = 0; i < layout.length; i += 3) {
    const write = writers[layout[i]];
    if (write !== undefined) write(bytes.subarray(layout[i + 1], layout[i + 2]));
  }
}

/** Makes sure a flush runs at the end of this turn. */
function schedule() {
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}

/** Routes a slot's bytes to `write` until `detach(slot)`. */
function attach(slot, write) {
  writers[slot] = write;
}

function detach(slot) {
  writers[slot] = undefined;
}

module.exports = { schedule, attach, detach };
