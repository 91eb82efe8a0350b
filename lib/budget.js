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

module.exports = { setMemoryBudget };
