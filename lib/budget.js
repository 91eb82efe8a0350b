'use strict';

// The memory budget of this thread's streams (see src/core/hub.rs): the most
// bytes held for all clients together, in Rust and in their responses.

const native = require('./native.js');
const { invalid } = require('./errors.js');

/**
 * Sets the budget, in bytes (default 128 MiB). Past it, at the end of a
 * turn, the clients furthest behind are cut off as slow consumers (they
 * resume by Last-Event-ID), until the rest fit; clients less than 64 KiB
 * behind are never cut off by it. `Infinity` turns it off.
 */
function setMemoryBudget(bytes) {
  if (typeof bytes !== 'number' || Number.isNaN(bytes) || bytes < 0) {
    throw invalid('bytes', 'a non-negative number of bytes (or Infinity)', bytes);
  }
  native.setMemoryBudget(Math.min(bytes, Number.MAX_SAFE_INTEGER));
}

// Resumes from Redis read their pages under the budget too: a page is read
// only into room that replays have under it (see replay_room in
// src/core/hub.rs), less what pages being read already took, so that a
// thousand resumes at once read no more than the budget holds.
let reserved = 0;

/**
 * Takes up to `want` bytes of the replays' room for a page about to be
 * read; resolves with what it took (at least 1) once there is room. The
 * caller gives it back with `releaseReplayRoom` once the page is queued
 * (from then on its bytes are counted as held).
 */
async function reserveReplayRoom(want, isClosed) {
  for (;;) {
    const room = Math.min(want, native.replayRoom() - reserved);
    if (room > 0 || isClosed()) {
      const taken = Math.max(1, room);
      reserved += taken;
      return taken;
    }
    // Full: what is held leaves as clients read; no event says when for
    // every transport, so the room is looked at again shortly.
    await new Promise((resolve) => setTimeout(resolve, ROOM_RETRY_MS));
  }
}

function releaseReplayRoom(taken) {
  reserved -= taken;
}

const ROOM_RETRY_MS = 10;

module.exports = { setMemoryBudget, reserveReplayRoom, releaseReplayRoom };
