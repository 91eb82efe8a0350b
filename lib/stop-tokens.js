'use strict';

// Settings of the tokens that close(true) gives a client (see src/core/stop.rs).

const native = require('./native.js');
const { invalid, invalidValue } = require('./errors.js');
const { setMarkMaxAge } = require('./stop-marks.js');
const { optionsObject } = require('./options.js');

/**
 * Sets the key that signs stop tokens, so that every process of a deployment
 * without a Redis-backed Channel honours the tokens of the others, and how
 * long a token is honoured. Processes that share a Redis-backed Channel share
 * a key through Redis by themselves.
 */
function configureStopTokens(options) {
  if (options === null || typeof options !== 'object') throw invalid('options', 'an object', options);
  optionsObject('options', options, ['key', 'maxAge'], 'configureStopTokens()');
  let key;
  // A key given as undefined is most often an environment variable that is
  // not set: refused, or tokens would quietly stop working across processes.
  if ('key' in options) {
    if (options.key === undefined) {
      throw invalidValue(
        'options.key',
        'is undefined: give a key of the deployment (is the variable it is read from set?), or leave the option out',
      );
    }
    if (typeof options.key === 'string') key = Buffer.from(options.key, 'utf8');
    else if (options.key instanceof Uint8Array) key = Buffer.from(options.key);
    else throw invalid('options.key', 'a string or a Uint8Array', options.key);
    if (key.length < native.MIN_STOP_KEY_BYTES) {
      throw invalidValue(
        'options.key',
        `must be at least ${native.MIN_STOP_KEY_BYTES} bytes long, received ${key.length}`,
      );
    }
  }
  const maxAge = options.maxAge;
  if (
    maxAge !== undefined &&
    (typeof maxAge !== 'number' || !Number.isFinite(maxAge) || maxAge < 1 || maxAge > Number.MAX_SAFE_INTEGER)
  ) {
    throw invalid('options.maxAge', 'a positive number of milliseconds', maxAge);
  }
  native.configureStopTokens(key, maxAge === undefined ? undefined : Math.floor(maxAge));
  if (maxAge !== undefined) setMarkMaxAge(Math.floor(maxAge));
}

module.exports = { configureStopTokens };
