'use strict';

// Counters of this copy of native-sse's endpoints, for diagnostics(): what an
// operator graphs. (Byte and event totals are kept in Rust, per thread.)

const { closedBy } = require('../close-reasons.js');

const counts = {
  streamsOpened: 0,
  /** Streams ended, by who ended them. */
  streamsClosed: { server: 0, client: 0, slowConsumer: 0, error: 0 },
  /** Reconnects refused with 204 because they carried a stop token. */
  stopTokenRefusals: 0,
  /** Connections adopted (the default), and those that could not be, by
   * why not (see lib/transports/adoption.js). */
  adopted: 0,
  notAdopted: {},
};

function adopted() {
  counts.adopted++;
}

function notAdopted(why) {
  counts.notAdopted[why] = (counts.notAdopted[why] ?? 0) + 1;
}

function opened() {
  counts.streamsOpened++;
}

function refused() {
  counts.stopTokenRefusals++;
}

/** A stream ended: `byServer` for close() and closeAll(). */
function closed(byServer, wasClean, reason) {
  counts.streamsClosed[closedBy(byServer, wasClean, reason)]++;
}

module.exports = { counts, opened, refused, closed, adopted, notAdopted };
