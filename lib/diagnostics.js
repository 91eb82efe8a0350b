'use strict';

const native = require('../binding.js');

/**
 * What native-sse holds on this thread right now, for tests and health
 * checks: open streams (one per open endpoint) and whether the shared
 * keep-alive timer (a tokio task and its thread-safe function) is running.
 * Both are zero once every endpoint has closed.
 */
function diagnostics() {
  return {
    openStreams: native.openStreamCount(),
    keepAliveTimer: native.keepAliveTimerRunning(),
  };
}

module.exports = { diagnostics };
