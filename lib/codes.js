'use strict';

// The codes of every error and warning native-sse gives, by name
// (`codes.SlowConsumer` is "ERR_SSE_SLOW_CONSUMER"). One registry, in Rust
// (src/core/codes.rs), read once from the addon: JavaScript writes messages
// only, never a code of its own.

const native = require('./native.js');

/** @type {Readonly<Record<string, string>>} */
const codes = Object.freeze({ ...native.errorCodes() });

module.exports = codes;
