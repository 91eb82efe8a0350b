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
 * the server that sends it. */
function streamHeaders(extra, { http1 }) {
  const headers = [
    ['Content-Type', 'text/event-stream'],
    ['Cache-Control', 'no-cache'],
    ['X-Accel-Buffering', 'no'], // or nginx buffers the stream
  ];
  if (http1) headers.push(['Connection', 'keep-alive']);
  return [...headers, ...userHeaders(extra)];
}

/** The user's extra headers, which may override the defaults but never the
 * content type that makes this an event stream. */
function userHeaders(extra) {
  return (extra ?? []).filter(([name]) => name.toLowerCase() !== 'content-type');
}

function lastEventIdOf(request) {
  if (isWebRequest(request)) return request.headers.get('last-event-id') ?? '';
  const value = request.headers['last-event-id'];
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.join(', ');
  return '';
}

module.exports = { isWebRequest, isNodeRequest, isNodeResponse, streamHeaders, userHeaders, lastEventIdOf };
