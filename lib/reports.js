'use strict';

// Reports of entries of a Redis stream that this process could not deliver
// as they are: one process warning per entry (whatever the number of
// clients or replays that meet it), and counts for diagnostics().

/** Entry ids already reported, oldest first; bounded. */
const reported = new Set();
const MAX_REMEMBERED = 4096;

const counts = {
  /** Entries skipped: not in the form this library writes. */
  skippedStreamEntries: 0,
  /** Entries larger than some client's maxBufferedBytes. */
  oversizedStreamEntries: 0,
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
    code: 'ERR_SSE_REDIS_BAD_ENTRY',
    detail: 'Entries of the stream must have a "d" (data) field and may have an "e" (event name) field, both UTF-8, the name without CR or LF.',
  });
}

/** An entry larger than the maxBufferedBytes of some clients. */
function oversizedEntry(where, id) {
  if (!firstTime(`oversized ${where} ${id}`)) return;
  counts.oversizedStreamEntries++;
  process.emitWarning(`Entry ${id} of ${where} is larger than some clients' maxBufferedBytes`, {
    type: 'NativeSseWarning',
    code: 'ERR_SSE_REDIS_ENTRY_TOO_LARGE',
    detail: 'Live clients that could not take it were cut off as slow consumers; resuming clients are replayed the stream without it.',
  });
}

module.exports = { skippedEntry, oversizedEntry, counts };
