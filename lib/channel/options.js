'use strict';

// Checks of a Channel's options: TypeErrors that name the argument, before
// anything is connected.

const native = require('../native.js');
const { MAX_U32, optionalString, requiredString, eventData, optionsObject } = require('../options.js');
const codes = require('../codes.js');
const { invalid, invalidValue, fromNative, largest, withCode } = require('../errors.js');

function incompleteEventOf(name) {
  if (name === undefined || name === null) return null;
  requiredString('options.incompleteEvent', name);
  if (name === '' || /[\r\n]/.test(name)) {
    throw invalidValue('options.incompleteEvent', 'must be a non-empty event name without CR or LF');
  }
  return name;
}

function historySizeOf(options) {
  const size = options.historySize;
  if (size === undefined) return native.DEFAULT_HISTORY_SIZE;
  if (!Number.isInteger(size) || size < 0 || size > MAX_U32) {
    throw invalid('options.historySize', 'a non-negative integer', size);
  }
  return size;
}

function historyBytesOf(options) {
  const bytes = options.historyBytes;
  if (bytes === undefined) return native.DEFAULT_HISTORY_BYTES;
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw invalid('options.historyBytes', 'a non-negative integer', bytes);
  }
  return bytes;
}

/** PEM material, as a string or bytes, holding a block of `label` (a
 * certificate, or a private key of any kind); passed on as a Buffer. */
function pemOf(name, value, label) {
  if (value === undefined || value === null) return undefined;
  let pem;
  if (typeof value === 'string') pem = Buffer.from(value, 'utf8');
  else if (value instanceof Uint8Array) pem = Buffer.from(value);
  else throw invalid(name, 'a PEM string or Buffer', value);
  const text = pem.toString('latin1');
  if (!text.includes('-----BEGIN ') || !text.includes(`${label}-----`)) {
    throw invalidValue(name, `must hold a PEM block of a ${label.toLowerCase()}`);
  }
  return pem;
}

function tlsOptionsOf(tls, url) {
  if (tls === undefined || tls === null) return undefined;
  optionsObject('options.redis.tls', tls, ['ca', 'cert', 'key'], 'a Redis TLS setting');
  if (!url.startsWith('rediss:')) {
    throw invalidValue('options.redis.tls', 'needs a rediss:// URL in "options.redis.url"');
  }
  const result = {
    ca: pemOf('options.redis.tls.ca', tls.ca, 'CERTIFICATE'),
    cert: pemOf('options.redis.tls.cert', tls.cert, 'CERTIFICATE'),
    key: pemOf('options.redis.tls.key', tls.key, 'PRIVATE KEY'),
  };
  if ((result.cert === undefined) !== (result.key === undefined)) {
    throw invalidValue('options.redis.tls', 'must give "cert" and "key" together, or neither');
  }
  return result;
}

/** The URL last read, and what it names: a hundred thousand channels made
 * on one Redis do not each read it again. */
let lastRedisUrl = { url: null, deployment: null };

/** What a Redis URL names (`{ kind, server }`), read in Rust
 * (src/io/redis/deployment.rs); a TypeError saying why it cannot be used,
 * without the URL itself (it may hold a password). */
function deploymentOf(url) {
  if (url === lastRedisUrl.url) return lastRedisUrl.deployment;
  let deployment;
  try {
    deployment = native.redisDeployment(url);
  } catch (err) {
    if (err?.code !== codes.RedisConfig) throw err;
    throw withCode(invalidValue('options.redis.url', `cannot be used: ${err.message}`), err.code);
  }
  lastRedisUrl = { url, deployment };
  return deployment;
}

function redisOptionsOf(redis) {
  if (redis === undefined) return null;
  if (redis === null || typeof redis !== 'object') throw invalid('options.redis', 'an object', redis);
  optionsObject('options.redis', redis, ['url', 'stream', 'maxLen', 'ttl', 'tls'], 'a Redis-backed Channel');
  const url = requiredString('options.redis.url', redis.url);
  deploymentOf(url);
  const stream = requiredString('options.redis.stream', redis.stream);
  if (stream === '') throw invalid('options.redis.stream', 'a non-empty string', stream);
  const maxLen = redis.maxLen ?? native.DEFAULT_STREAM_MAX_LEN;
  if (!Number.isInteger(maxLen) || maxLen < 0 || maxLen > MAX_U32) {
    throw invalid('options.redis.maxLen', 'a non-negative integer', maxLen);
  }
  const ttl = redis.ttl ?? native.DEFAULT_STREAM_TTL_MS;
  if (!Number.isSafeInteger(ttl) || ttl < 0) {
    throw invalid('options.redis.ttl', 'a non-negative integer (milliseconds)', ttl);
  }
  return { url, stream, maxLen, ttl, tls: tlsOptionsOf(redis.tls, url) };
}

/** The checked arguments of `broadcast(data, options)`: `data`, and
 * `options.event`; `options.id` as given (each kind of channel has its own
 * rule for it). */
function broadcastArgumentsOf(data, options) {
  const text = eventData('data', data);
  optionsObject('options', options, ['event', 'id'], 'broadcast()');
  return { data: text, event: optionalString('options.event', options?.event), id: options?.id };
}

/** An id given for a broadcast of a Redis-backed channel. */
function redisIdGiven() {
  return invalidValue('options.id', 'cannot be given: the ids of a Redis-backed channel are its stream ids');
}

/** The error a user sees for a broadcast that Rust refused; an event too
 * large is named by its largest part. */
function broadcastError(err, data, event, id) {
  const parts = [
    ['data', data],
    ['options.event', event],
    ['options.id', id],
  ];
  return fromNative(err, { data: largest(parts), event: 'options.event', id: 'options.id' });
}

/** subscribe() of an endpoint whose composite Last-Event-ID, with this
 * channel's stream, could grow past what a client can send back. */
function tooManyChannels(err) {
  if (err?.code !== codes.TooManyChannels) return err;
  return withCode(
    new RangeError(
      `The "endpoint" argument follows too many Redis-backed channels to resume them all from one Last-Event-ID: ${err.message}`,
    ),
    err.code,
  );
}

module.exports = {
  tooManyChannels,
  incompleteEventOf,
  historySizeOf,
  historyBytesOf,
  redisOptionsOf,
  broadcastArgumentsOf,
  redisIdGiven,
  broadcastError,
};
