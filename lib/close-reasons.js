'use strict';

// Why a stream ended, as its `close` event's `reason` says. A stream ends
// with one of these, or with the message of whatever failed (a socket
// error, a Redis read). The error a later `send()` rejects with and the
// counter `diagnostics().streamsClosed` adds to are read from the reason
// here, in one place.

const codes = require('./codes.js');

const CloseReason = Object.freeze({
  /** Too far behind: past maxBufferedBytes, the memory budget, or a stalled
   * socket. It resumes by Last-Event-ID. */
  SlowConsumer: 'slow consumer',
  ClientDisconnected: 'client disconnected',
  SocketFailed: 'client disconnected (its socket failed)',
  EndedBehind: 'the response was ended by someone else',
  ClosedByServer: 'closed by the server',
  ClosedNoReconnect: 'closed by the server, no reconnect',
  /** A reconnect carrying a stop token, answered 204. */
  ToldNotToReconnect: 'client was told not to reconnect',
  HeadRequest: 'HEAD request',
  CloseAllTimedOut: 'closeAll() timed out',
});

/** The code of the error a `send()` after the end rejects with. */
function closedCode(reason) {
  return reason === CloseReason.SlowConsumer ? codes.SlowConsumer : codes.Closed;
}

/** Which `streamsClosed` counter a stream's end adds to. */
function closedBy(byServer, wasClean, reason) {
  if (byServer) return 'server';
  if (reason === CloseReason.SlowConsumer) return 'slowConsumer';
  return wasClean ? 'client' : 'error';
}

module.exports = { CloseReason, closedCode, closedBy };
