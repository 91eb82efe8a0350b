'use strict';

// diagnostics(): what native-sse holds and has done on this thread. The
// Rust half comes in one call (src/bindings/diagnostics.rs), under the same
// names; the rest is counted here: streams by how they ended (metrics.js)
// and the warnings of Redis-backed channels (warnings.js).

const native = require('../native.js');
const warnings = require('./warnings.js');
const metrics = require('./metrics.js');
const { Link } = require('../channel/link.js');

/**
 * Open streams (one per open endpoint), whether a keep-alive timer runs,
 * the sockets Rust writes to, the bytes held against the memory budget,
 * totals of events and bytes, the bytes channels' histories hold, the
 * entries of Redis streams that could not be delivered as they are (each is
 * reported once as a warning, too), streams by how they ended, and each
 * Redis deployment's link (connected or since when not, and the channels
 * and clients on it). The figures of what is held are zero once every
 * endpoint has closed.
 */
function diagnostics() {
  const figures = native.figures();
  return {
    openStreams: figures.openStreams,
    keepAliveTimer: figures.keepAliveTimer,
    directSockets: figures.directSockets,
    adoptedConnections: figures.adoptedConnections,
    heldBytes: figures.heldBytes,
    memoryBudget: figures.memoryBudget,
    eventsQueued: figures.eventsQueued,
    bytesWritten: figures.bytesWritten,
    budgetCutOffs: figures.budgetCutOffs,
    writerWaitMs: figures.writerWaitMs,
    historyBytes: figures.historyBytes,
    skippedStreamEntries: warnings.counts.skippedStreamEntries,
    oversizedStreamEntries: warnings.counts.oversizedStreamEntries,
    streamReadFailures: warnings.counts.streamReadFailures,
    unreadableStreams: warnings.counts.unreadableStreams,
    streamRewinds: warnings.counts.streamRewinds,
    streamsOpened: metrics.counts.streamsOpened,
    streamsClosed: { ...metrics.counts.streamsClosed },
    stopTokenRefusals: metrics.counts.stopTokenRefusals,
    adopted: metrics.counts.adopted,
    notAdopted: { ...metrics.counts.notAdopted },
    redis: Link.describeAll(),
  };
}

module.exports = { diagnostics };
