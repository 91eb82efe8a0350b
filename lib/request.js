'use strict';

// What an endpoint needs to know of the request and response it was given:
// which kind they are, the client's Last-Event-ID, and the stream's headers.

function isObject(value) {
  return value !== null && typeof value === 'object';
}

function isWebRequest(value) {
  return typeof Request === 'function' && value instanceof Request;
}

function isNodeRequest(value) {
  return isObject(value) && isObject(value.headers) && !isWebRequest(value);
}

function isNodeResponse(value) {
  return (
    isObject(value) &&
    typeof value.writeHead === 'function' &&
    typeof value.setHeader === 'function' &&
    typeof value.write === 'function' &&
    typeof value.end === 'function' &&
    typeof value.on === 'function'
  );
}

/** The headers of a stream, as [name, value] pairs. `Connection` is
 * connection-specific: HTTP/2 forbids it, and a web Response leaves it to
 * the server that sends it. `closes`: the connection may be adopted, which
 * closes it when its stream ends, and says so (`close`): a keep-alive
 * client would otherwise send its next request on it, and lose it to the
 * close, as happened on a busy machine. (Not adopted, Node closes it too
 * then.) */
function streamHeaders(extra, { http1, closes = false }) {
  const headers = [
    ['Content-Type', 'text/event-stream'],
    ['Cache-Control', 'no-cache'],
    ['X-Accel-Buffering', 'no'], // or nginx buffers the stream
  ];
  if (http1) headers.push(['Connection', closes ? 'close' : 'keep-alive']);
  return [...headers, ...userHeaders(extra)];
}

/** The user's extra headers, which may override the defaults but never the
 * content type that makes this an event stream. */
function userHeaders(extra) {
  return (extra ?? []).filter(([name]) => name.toLowerCase() !== 'content-type');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A header value as the client meant it. Node (and the fetch Headers) read
 * header bytes as latin1, one character per byte; browsers send
 * `Last-Event-ID` as UTF-8. Bytes that are valid UTF-8 are decoded as such,
 * so that `café-2` comes back as `café-2`; anything else stays as read.
 */
function fromHeaderBytes(value) {
  // Plain ASCII reads the same either way.
  if (!/[\x80-\xff]/.test(value)) return value;
  try {
    return utf8.decode(Buffer.from(value, 'latin1'));
  } catch {
    return value;
  }
}

function lastEventIdOf(request) {
  let value;
  if (isWebRequest(request)) value = request.headers.get('last-event-id') ?? '';
  else {
    value = request.headers['last-event-id'];
    if (Array.isArray(value)) value = value.join(', ');
    else if (typeof value !== 'string') value = '';
  }
  return fromHeaderBytes(value);
}

/** Headers that would break an event stream if the user set them: a length
 * or an encoding of the body, and (on HTTP/2, where Node refuses them)
 * connection-specific ones. */
const BREAKING = new Set(['content-length', 'transfer-encoding', 'content-encoding']);
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade']);

/** The name of the first of `headers` that would break the stream, or null. */
function breakingHeader(headers, { http2 }) {
  for (const [name] of headers ?? []) {
    const lower = name.toLowerCase();
    if (BREAKING.has(lower) || (http2 && CONNECTION_SPECIFIC.has(lower))) return name;
  }
  return null;
}

module.exports = {
  isWebRequest,
  isNodeRequest,
  isNodeResponse,
  streamHeaders,
  userHeaders,
  lastEventIdOf,
  breakingHeader,
};
