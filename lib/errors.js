'use strict';

const native = require('./native.js');
const codes = require('./codes.js');
const { closedCode } = require('./close-reasons.js');

// Every error native-sse gives a user: its class, its `code` (listed in the
// README, for matching), and its message, which names the argument the user
// passed. Errors from Rust arrive with a code per kind and a short detail
// (src/bindings/error.rs); the message is written here, where the argument's
// name is known. Every code is read from the registry (lib/codes.js). No
// message text is parsed or patched.

function describe(value) {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`;
  if (typeof value === 'string') return `a string of length ${value.length}`;
  if (typeof value === 'symbol') return 'a symbol';
  return `${typeof value} ${String(value)}`;
}

/** Marks every error native-sse makes, whatever its code (Node's own
 * `ERR_INVALID_ARG_TYPE` among them): what `isSseError` looks for. Shared by
 * every copy of the module (a module registry reset loads a second). */
const kSseError = Symbol.for('native-sse.error');

function withCode(err, code) {
  err.code = code;
  Object.defineProperty(err, kSseError, { value: true });
  return err;
}

/**
 * Whether `err` is an error native-sse made (and, with `code`, one with that
 * code): a type guard, so that TypeScript reads `err.code` without a cast.
 * Errors from the addon itself carry a code of native-sse's own
 * (`ERR_SSE_…`) and count too.
 */
function isSseError(err, code = undefined) {
  if (!(err instanceof Error)) return false;
  const ours = err[kSseError] === true || (typeof err.code === 'string' && err.code.startsWith('ERR_SSE_'));
  return ours && (code === undefined || err.code === code);
}

/** An argument of the wrong type or out of range. */
function invalid(name, expected, value) {
  return withCode(
    new TypeError(`The "${name}" argument must be ${expected}, received ${describe(value)}`),
    'ERR_INVALID_ARG_TYPE',
  );
}

/** An argument whose type is right and whose value is not. */
function invalidValue(name, why) {
  return withCode(new TypeError(`The "${name}" argument ${why}`), 'ERR_INVALID_ARG_VALUE');
}

/**
 * The error a user sees for an error from Rust. `names` says which argument
 * each part of a frame came from: `{ data, event, id }`.
 */
function fromNative(err, names) {
  switch (err?.code) {
    case codes.InvalidEvent:
      return withCode(
        new TypeError(`The "${names.event}" argument must not contain a line break (CR or LF): ${err.message}`),
        err.code,
      );
    case codes.InvalidId:
      return withCode(
        new TypeError(
          `The "${names.id}" argument must not contain CR, LF or NUL, nor be longer than ${native.MAX_ID_BYTES} bytes: ${err.message}`,
        ),
        err.code,
      );
    case codes.EventTooLarge:
      return withCode(new TypeError(`The "${names.data}" argument is too large: ${err.message}`), err.code);
    default:
      return err;
  }
}

/**
 * Refuses an id that cannot round-trip: one with a lone surrogate would be
 * sent as U+FFFD and come back, as `Last-Event-ID`, as another id.
 */
function checkId(name, id) {
  if (id !== undefined && !id.isWellFormed()) {
    throw withCode(
      new TypeError(
        `The "${name}" argument must not contain a lone surrogate (it could not come back as Last-Event-ID)`,
      ),
      codes.InvalidId,
    );
  }
  return id;
}

/** The name of the largest of an event's parts, for an event too large:
 * `parts` is [[name, string], …]. */
function largest(parts) {
  let best = parts[0];
  for (const part of parts) if ((part[1]?.length ?? 0) > (best[1]?.length ?? 0)) best = part;
  return best[0];
}

/** An event larger than an endpoint's own cap. */
function tooLarge(name, maxBufferedBytes) {
  return withCode(
    new TypeError(
      `The "${name}" argument is too large: the event takes more than maxBufferedBytes (${maxBufferedBytes} bytes)`,
    ),
    codes.EventTooLarge,
  );
}

/** What `send()` rejects with once the stream has closed. */
function closedError(reason) {
  return withCode(new Error(`Cannot send: the event stream is closed (${reason})`), closedCode(reason));
}

/** A broadcast Redis did not take; `outcome.code` says whether it may have
 * been appended anyway. */
function publishError({ code, reason }) {
  const fate =
    code === codes.RedisOutcomeUnknown
      ? 'the broadcast may or may not have been appended (do not simply retry it)'
      : 'the broadcast was not appended';
  return withCode(new Error(`${reason}: ${fate}`), code);
}

/** Marks a promise's rejection as handled, so that a caller that does not
 * await it (an un-awaited `send()` or `broadcast()`) cannot end the process
 * with an unhandled rejection, while one that awaits it still sees it. */
function handled(promise) {
  promise.then(undefined, ignore);
  return promise;
}

/** One function for every handled() promise (a closure each would cost a
 * broadcast, or a channel's `ready`, 32 bytes more until it settles). */
function ignore() {}

module.exports = {
  isSseError,
  checkId,
  largest,
  handled,
  withCode,
  invalid,
  invalidValue,
  fromNative,
  tooLarge,
  closedError,
  publishError,
};
