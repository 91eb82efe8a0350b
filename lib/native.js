'use strict';

// The addon, loaded once for the whole layer. Where no prebuilt binary
// matches the machine (a platform without one, or an install that skipped
// optional dependencies), a one-line error names the platform and says how
// to build it, instead of the loader's page of attempts (kept as `cause`).

function platformName() {
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`;
  const glibc = process.report?.getReport?.().header?.glibcVersionRuntime;
  return `linux-${process.arch}-${glibc ? 'gnu' : 'musl'}`;
}

let native;
try {
  native = require('../binding.js');
} catch (cause) {
  const err = new Error(
    `native-sse has no prebuilt binary for ${platformName()}: build it from source (Rust required) with \`npm ci && npm run build\` in a clone of its repository, or install with optional dependencies`,
    { cause },
  );
  // The one code not read from the registry (lib/codes.js): the registry
  // is in the binary that could not be loaded.
  err.code = 'ERR_SSE_NO_BINARY';
  throw err;
}

module.exports = native;
