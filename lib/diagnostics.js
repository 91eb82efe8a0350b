'use strict';

const native = require('./native.js');
const reports = require('./reports.js');
const metrics = require('./metrics.js');

/**
 * What native-sse holds on this thread right now, for tests and health
 * checks: open streams (one per open endpoint) and whether the shared
 * keep-alive timer (a tokio task and its thread-safe function) is running.
 * Both are zero once every endpoint has closed. Also counts the entries of
 * Redis streams that could not be delivered as they are (each is reported
 * once as a warning, too).
 */
function held() {
  const [heldBytes, memoryBudget, eventsQueued, bytesWritten, budgetCutOffs] = native.hubFigures();
  return { heldBytes, memoryBudget, eventsQueued, bytesWritten, budgetCutOffs };
}

function diagnostics() {
  return {
    openStreams: native.openStreamCount(),
    keepAliveTimer: native.keepAliveTimerRunning(),
    directSockets: native.directSocketCount(),
    ...held(),
    historyBytes: native.historyBytesHeld(),
    skippedStreamEntries: reports.counts.skippedStreamEntries,
    oversizedStreamEntries: reports.counts.oversizedStreamEntries,
    streamReadFailures: reports.counts.streamReadFailures,
    unreadableStreams: reports.counts.unreadableStreams,
    streamRewinds: reports.counts.streamRewinds,
    streamsOpened: metrics.counts.streamsOpened,
    streamsClosed: { ...metrics.counts.streamsClosed },
    stopTokenRefusals: metrics.counts.stopTokenRefusals,
  };
}

module.exports = { diagnostics };
