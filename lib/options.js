'use strict';

// Checks of what the user passes in, so that bad input fails loudly with a
// TypeError that names the argument, before any byte is written.

const native = require('./native.js');
const { invalid, invalidValue } = require('./errors.js');
const { IS_BUN } = require('./runtime.js');
const { checkOptionNames } = require('./option-names.js');

/** The largest count Rust takes (a u32). */
const MAX_U32 = 0xffff_ffff;
// Bun.serve drops a request idle for 10 s: there a comment goes out sooner.
const DEFAULT_KEEP_ALIVE = IS_BUN ? native.BUN_KEEP_ALIVE_MS : native.DEFAULT_KEEP_ALIVE_MS;
// RFC 9110 token and field-value characters.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A millisecond or byte count: a finite number from 0 to 2^32 - 1, floored. */
function count(name, value, fallback) {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_U32) {
    throw invalid(name, 'a non-negative finite number', value);
  }
  return Math.floor(value);
}

const HEADERS_EXPECTED = 'a plain object of header names to strings, a Headers or an array of [name, value] pairs';

/** The [name, value] pairs of `headers`: a plain object, a web `Headers`, or
 * an array of pairs; anything else (a Map, a class instance whose fields
 * would be read as headers) is refused rather than read wrongly. */
function headerEntries(name, value) {
  if (typeof Headers === 'function' && value instanceof Headers) return [...value.entries()];
  if (Array.isArray(value)) {
    return value.map((pair, index) => {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string') {
        throw invalid(`${name}[${index}]`, 'a [name, value] pair of strings', pair);
      }
      return [pair[0], pair[1]];
    });
  }
  const proto = value !== null && typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (proto !== Object.prototype && proto !== null) throw invalid(name, HEADERS_EXPECTED, value);
  return Object.entries(value);
}

function headerMap(name, value) {
  if (value === undefined) return undefined;
  const entries = headerEntries(name, value);
  for (const [key, item] of entries) {
    // Checked here, so that a bad header fails before any byte is written,
    // naming itself; a CR or LF in a value would be header injection.
    if (!HEADER_NAME.test(key)) {
      throw invalidValue(name, `has an invalid header name: ${JSON.stringify(key)}`);
    }
    if (typeof item !== 'string' || !HEADER_VALUE.test(item)) {
      throw invalid(`${name}.${key}`, 'a header value (a string without CR, LF, NUL or characters past U+00FF)', item);
    }
  }
  return entries;
}

/**
 * The reconnection time to send, with `reconnectionJitter` added: a random
 * part, so that clients cut off together (a deploy, a network blip) do not
 * all come back in the same moment.
 */
function retryOf(options) {
  const base = count('options.reconnectionTime', options.reconnectionTime, undefined);
  const jitter = count('options.reconnectionJitter', options.reconnectionJitter, 0);
  if (jitter > 0 && base === undefined) {
    throw invalidValue('options.reconnectionJitter', 'needs "options.reconnectionTime", which it is added to');
  }
  return jitter > 0 ? Math.min(MAX_U32, base + Math.floor(Math.random() * jitter)) : base;
}

/**
 * Validates EventEndpointOptions and returns them normalised.
 * `undefined` and `null` mean "all defaults".
 */
const ENDPOINT_OPTIONS = [
  'reconnectionTime',
  'reconnectionJitter',
  'keepAlive',
  'closeTimeout',
  'stallTimeout',
  'adopt',
  'highWaterMark',
  'maxBufferedBytes',
  'headers',
];

/** An options argument: undefined and null mean "all defaults"; anything
 * else must be a plain object (or one made by Object.create(null)) whose
 * every property is a known option. */
function optionsObject(name, options, known, what) {
  if (options === undefined || options === null) return {};
  const proto = typeof options === 'object' ? Object.getPrototypeOf(options) : undefined;
  if (proto !== Object.prototype && proto !== null) throw invalid(name, 'an object of options', options);
  checkOptionNames(name, options, known, what);
  return options;
}

function normalizeOptions(options) {
  options = optionsObject('options', options, ENDPOINT_OPTIONS, 'EventEndpoint');
  const maxBufferedBytes = count(
    'options.maxBufferedBytes',
    options.maxBufferedBytes,
    native.DEFAULT_MAX_BUFFERED_BYTES,
  );
  if (maxBufferedBytes === 0) throw invalid('options.maxBufferedBytes', 'at least 1', 0);
  const highWaterMark = count('options.highWaterMark', options.highWaterMark, native.DEFAULT_HIGH_WATER_MARK);
  return {
    reconnectionTime: retryOf(options),
    keepAlive: count('options.keepAlive', options.keepAlive, DEFAULT_KEEP_ALIVE),
    closeTimeout: count('options.closeTimeout', options.closeTimeout, native.DEFAULT_CLOSE_TIMEOUT_MS),
    stallTimeout: count('options.stallTimeout', options.stallTimeout, native.DEFAULT_STALL_TIMEOUT_MS),
    // A mark above the cap could never be reached: the client would be cut
    // off before send() ever waited.
    highWaterMark: Math.min(highWaterMark, maxBufferedBytes),
    maxBufferedBytes,
    headers: headerMap('options.headers', options.headers),
    adopt: adoptOf(options.adopt),
  };
}

/** Adoption is every endpoint's default (where it can be: see
 * lib/transports/node.js); `NATIVE_SSE_ADOPT=0` in the environment turns it
 * off for the whole process, `adopt: false` for one endpoint. */
const ADOPT_BY_DEFAULT = process.env.NATIVE_SSE_ADOPT !== '0';

function adoptOf(adopt) {
  if (adopt === undefined) return ADOPT_BY_DEFAULT;
  if (typeof adopt !== 'boolean') throw invalid('options.adopt', 'a boolean', adopt);
  return adopt;
}

/** An optional string argument: undefined and null mean "none". */
function optionalString(name, value) {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(name, 'a string', value);
  return value;
}

function requiredString(name, value) {
  if (typeof value !== 'string') throw invalid(name, 'a string', value);
  return value;
}

/** An event's data: a string as it is (the API of jsext), and any other
 * value JSON can represent as its JSON text, so that objects need no
 * `JSON.stringify` by hand. */
function eventData(name, value) {
  if (typeof value === 'string') return value;
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') {
    throw invalid(name, 'a string or a value JSON can represent', value);
  }
  let json;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw invalidValue(name, `cannot be serialized as JSON: ${err.message}`);
  }
  if (json === undefined) throw invalidValue(name, 'serializes to nothing as JSON');
  return json;
}

module.exports = { MAX_U32, optionsObject, normalizeOptions, optionalString, requiredString, eventData, count };
