'use strict';

// The warnings of Redis-backed channels, and their counts for
// diagnostics(): entries of a stream that this process could not deliver as
// they are (one warning per entry, whatever the number of clients or
// replays that meet it), a stream that cannot be read, a stream that went
// back.

const codes = require('../codes.js');

/** Entry ids already reported, oldest first; bounded. */
const reported = new Set();
const MAX_REMEMBERED = 4096;

const counts = {
  /** Entries skipped: not in the form this library writes. */
  skippedStreamEntries: 0,
  /** Entries larger than some client's maxBufferedBytes. */
  oversizedStreamEntries: 0,
  /** Times a stream's live reader met an error that retrying will not heal. */
  streamReadFailures: 0,
  /** Redis-backed channels whose live reader cannot read now. */
  unreadableStreams: 0,
  /** Times a stream was found behind the last id read from it. */
  streamRewinds: 0,
};

function firstTime(key) {
  if (reported.has(key)) return false;
  reported.add(key);
  if (reported.size > MAX_REMEMBERED) reported.delete(reported.values().next().value);
  return true;
}

/** An entry skipped for every client: `reason` says why. */
function skippedEntry(where, id, reason) {
  if (!firstTime(`skipped ${where} ${id}`)) return;
  counts.skippedStreamEntries++;
  process.emitWarning(`Skipped entry ${id} of ${where}: ${reason}`, {
    type: 'NativeSseWarning',
    code: codes.RedisBadEntry,
    detail:
      'Entries of the stream must have a "d" (data) field and may have an "e" (event name) field, both UTF-8, the name without CR or LF.',
  });
}

/** An entry larger than the maxBufferedBytes of some clients. */
function oversizedEntry(where, id) {
  if (!firstTime(`oversized ${where} ${id}`)) return;
  counts.oversizedStreamEntries++;
  process.emitWarning(`Entry ${id} of ${where} is larger than some clients' maxBufferedBytes`, {
    type: 'NativeSseWarning',
    code: codes.RedisEntryTooLarge,
    detail:
      'Live clients that could not take it were cut off as slow consumers; resuming clients are replayed the stream without it.',
  });
}

/** A live reader that cannot read its stream, for a reason that retrying
 * will not heal (it goes on trying, at its slowest pace). */
function unreadableStream(where, reason) {
  counts.streamReadFailures++;
  process.emitWarning(`${reason} (${where}): this process delivers nothing from the stream until it can read it`, {
    type: 'NativeSseWarning',
    code: codes.RedisUnreadable,
    detail:
      "The Redis user needs XREAD, XRANGE and XREVRANGE on the stream's key, which must hold a stream. The reader keeps trying.",
  });
}

/** Clients wait on a Redis that cannot be reached: said once an outage
 * (see lib/channel/link.js). */
function unreachable(server, reason, clients, streams) {
  process.emitWarning(
    `${reason}: ${clients} ${clients === 1 ? 'client waits' : 'clients wait'} on ${streams} ${streams === 1 ? 'stream' : 'streams'} of Redis at ${server}`,
    {
      type: 'NativeSseWarning',
      code: codes.RedisUnavailable,
      detail:
        "They stay connected and get what is broadcast once Redis is back (the link keeps trying); until then nothing reaches them from Redis, broadcasts are refused (ERR_SSE_REDIS_NOT_APPENDED), and subscribe() says complete: false. diagnostics().redis shows each link's state.",
    },
  );
}

/** A stream found behind the last id read from it. */
function rewoundStream(where, from, to) {
  counts.streamRewinds++;
  process.emitWarning(
    `${where} went back: its newest entry is before ${from}, the last one this process read; it goes on after ${to}`,
    {
      type: 'NativeSseWarning',
      code: codes.RedisRewound,
      detail:
        'A new, emptied or restored Redis, or one whose clock is behind, gives ids below the old ones. Entries appended by other processes before this one noticed may not have been delivered by it; clients that resume are told their resume is incomplete.',
    },
  );
}

/** The server read lacks the last entry this process delivered, though it
 * has entries after it: another timeline (a failover after a split brain),
 * or a stream that lost its front past it (trimmed, or deleted and written
 * again). */
function divergedStream(where, from, to, lostTrack) {
  counts.streamRewinds++;
  const how = lostTrack
    ? `none of the entries it delivered last is there: it goes on after ${to}, and entries before may have been missed (live clients are sent the incomplete event)`
    : `it goes on after ${to}, the newest entry it delivered that the server has, so that none is missed`;
  process.emitWarning(
    `${where} is not the stream this process read: ${from}, the last entry it delivered, is not there; ${how}`,
    {
      type: 'NativeSseWarning',
      code: codes.RedisRewound,
      detail:
        'A failover after a split brain (the old master appended entries the new one never had), a stream trimmed past what this process had read, or one deleted and written again. Entries delivered from another timeline are not in the stream; clients that resume after them are told their resume is incomplete.',
    },
  );
}

/** A fault of ours in work called back from Rust (a thread-safe function):
 * reported, never thrown to uncaughtException. */
function internalFault(where, err) {
  process.emitWarning(`Internal error on ${where}: ${err?.message ?? err}`, {
    type: 'NativeSseWarning',
    code: codes.Internal,
    detail: err?.stack,
  });
}

module.exports = {
  unreachable,
  skippedEntry,
  oversizedEntry,
  unreadableStream,
  rewoundStream,
  divergedStream,
  internalFault,
  counts,
};
