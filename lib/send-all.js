'use strict';

// Sending everything a source yields, item by item: an async iterable (an
// async generator, a Node Readable, a web ReadableStream), or an iterable.
// An endpoint's sendAll() goes at its client's pace (each send() awaited)
// and a channel's broadcastAll() at the event loop's; either stops when told
// to (the client left, a signal aborted) and then stops the source through
// its iterator's return(): a generator's `finally` runs, a Readable is
// destroyed, a ReadableStream is cancelled. Stopping is not an error: the
// promise resolves, with `complete: false`.

const { invalid } = require('./errors.js');
const { optionsObject } = require('./options.js');

const STOPPED = Symbol('stopped');
const ignore = () => {};

/** An iterator over what `source` yields (its `next()` may return a promise). */
function iteratorOf(source) {
  if ((typeof source === 'object' && source !== null) || typeof source === 'function') {
    if (typeof source[Symbol.asyncIterator] === 'function') return source[Symbol.asyncIterator]();
    // A ReadableStream of a runtime without async iteration of streams.
    if (typeof source.getReader === 'function') {
      const reader = source.getReader();
      return { next: () => reader.read(), return: () => reader.cancel() };
    }
    if (typeof source[Symbol.iterator] === 'function') return source[Symbol.iterator]();
  }
  throw invalid('source', 'an async iterable, an iterable, a Node Readable or a web ReadableStream', source);
}

/** Stops a source that did not end by itself; whatever that says is ignored
 * (there is no one left to tell). */
function stop(iterator) {
  try {
    const done = iterator.return?.();
    if (typeof done?.then === 'function') done.then(ignore, ignore);
  } catch {}
}

/** The options of sendAll() and broadcastAll(), checked before anything is
 * read from the source. */
function optionsOf(options, what) {
  if (options === undefined || options === null) return {};
  optionsObject('options', options, ['event', 'id', 'serialize', 'signal'], what);
  const { event, id, serialize, signal } = options;
  if (event !== undefined && typeof event !== 'string' && typeof event !== 'function')
    throw invalid('options.event', 'a string or a function', event);
  if (id !== undefined && typeof id !== 'function') throw invalid('options.id', 'a function', id);
  if (serialize !== undefined && typeof serialize !== 'function')
    throw invalid('options.serialize', 'a function', serialize);
  if (signal !== undefined && !(signal instanceof AbortSignal))
    throw invalid('options.signal', 'an AbortSignal', signal);
  return { event, id, serialize, signal };
}

/**
 * Sends what `source` yields with `send(data, event, id)`, which returns a
 * promise (settled once the next item may go) or throws; stops when one of
 * `signals` aborts, or when `send` fails while `quiet()` says the failure
 * means "stop" (the stream closed). Resolves with how many items were sent
 * and whether the source ended by itself; rejects with the source's error,
 * or a TypeError for an item that cannot be sent (the source is stopped).
 */
async function sendAll(source, options, signals, send, quiet) {
  const iterator = iteratorOf(source);
  const { event, id, serialize } = options;
  const decoder = new TextDecoder();
  let sent = 0;
  let ended = false;
  let onAbort = null;
  const stopped = new Promise((resolve) => {
    onAbort = () => resolve(STOPPED);
  });
  for (const signal of signals) signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (let index = 0; !signals.some((signal) => signal.aborted); index++) {
      const next = Promise.resolve(iterator.next());
      // Left pending when a stop comes first: its outcome is nobody's.
      next.then(ignore, ignore);
      const step = await Promise.race([next, stopped]);
      if (step === STOPPED) break;
      if (step.done) {
        ended = true;
        const rest = serialize === undefined ? decoder.decode() : '';
        if (rest !== '') await send(rest, typeof event === 'function' ? undefined : event, undefined);
        break;
      }
      const item = step.value;
      let data;
      if (serialize !== undefined) data = serialize(item, index);
      else if (item instanceof Uint8Array) {
        // Bytes (a Readable or a ReadableStream of them) are UTF-8 text,
        // a character split between two chunks put together again.
        data = decoder.decode(item, { stream: true });
        if (data === '') continue;
      } else data = item;
      try {
        await send(data, typeof event === 'function' ? event(item, index) : event, id?.(item, index));
      } catch (err) {
        if (quiet()) break;
        throw err;
      }
      sent++;
    }
  } finally {
    for (const signal of signals) signal.removeEventListener('abort', onAbort);
    if (!ended) stop(iterator);
  }
  return { sent, complete: ended };
}

module.exports = { sendAll, optionsOf };
