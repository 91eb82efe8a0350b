'use strict';

// The addon, loaded once for the whole layer. Where no prebuilt binary
// matches the machine (a platform without one, or an install that skipped
// optional dependencies), the error is one line that names the platform and
// says how to build it, and nothing else: no stack of require() calls, no
// page of the loader's attempts (kept, not printed, as `loadError`).

function platformName() {
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`;
  const glibc = process.report?.getReport?.().header?.glibcVersionRuntime;
  return `linux-${process.arch}-${glibc ? 'gnu' : 'musl'}`;
}

let native;
try {
  native = require('../binding.js');
} catch (loadError) {
  // One frame (where it was thrown), not the chain of require() calls.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 1;
  const err = new Error(
    `native-sse has no prebuilt binary for ${platformName()}: build it from source (Rust required) with \`npm ci && npm run build\` in a clone of its repository, or install with optional dependencies`,
  );
  Error.stackTraceLimit = limit;
  // The one code not read from the registry (lib/codes.js): the registry
  // is in the binary that could not be loaded. It is named in the first
  // line, as Node names its own; neither it nor `loadError` is enumerable,
  // since an uncaught error prints its own enumerable properties.
  Object.defineProperty(err, 'code', { value: 'ERR_SSE_NO_BINARY', enumerable: false });
  Object.defineProperty(err, 'loadError', { value: loadError, enumerable: false });
  err.stack = err.stack.replace(/^Error:/, 'Error [ERR_SSE_NO_BINARY]:');
  throw err;
}

module.exports = native;
